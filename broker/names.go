package broker

import "github.com/roomcast/roomcast/internal/roomname"

// MaxRoomLen is the longest room name accepted, in bytes.
const MaxRoomLen = roomname.MaxLen

// ValidateRoom reports whether name is a valid room name, and if not, what is
// wrong with it in words fit for a client.
//
// A room name is 1 to MaxRoomLen bytes of dot-separated segments. A segment
// is one or more of the characters A-Z a-z 0-9 - _ : @ =, so "chat.room-42"
// and "tenant:7.orders" are valid, while "", ".a", "a..b", "a b" and "chat.*"
// are not. The dot is the hierarchy separator that grant patterns match on;
// the grammar is the one auth.ParsePattern extends with wildcards.
func ValidateRoom(name string) error { return roomname.Validate(name) }
