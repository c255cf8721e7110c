package broker

import (
	"fmt"
	"strings"
)

// MaxRoomLen is the longest room name accepted, in bytes.
const MaxRoomLen = 200

// ValidateRoom reports whether name is a valid room name, and if not, what is
// wrong with it in words fit for a client.
//
// A room name is 1 to MaxRoomLen bytes of dot-separated segments. A segment
// is one or more of the characters A-Z a-z 0-9 - _ : @ =, so "chat.room-42"
// and "tenant:7.orders" are valid, while "", ".a", "a..b", "a b" and "chat.*"
// are not. The dot is the hierarchy separator that grant patterns match on.
func ValidateRoom(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("room name is empty")
	case len(name) > MaxRoomLen:
		return fmt.Errorf("room name is %d bytes long; the limit is %d", len(name), MaxRoomLen)
	case name[0] == '.' || name[len(name)-1] == '.':
		return fmt.Errorf("room name %q starts or ends with a dot", name)
	case strings.Contains(name, ".."):
		return fmt.Errorf("room name %q has an empty segment (\"..\")", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c != '.' && !roomChar(c) {
			return fmt.Errorf("room name %q has a character that is not allowed at byte %d (allowed: A-Z a-z 0-9 - _ : @ = and . between segments)", clip(name), i)
		}
	}
	return nil
}

func roomChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case c == '-', c == '_', c == ':', c == '@', c == '=':
		return true
	}
	return false
}

// clip shortens a client's string for an error message; %q then escapes
// whatever it holds, so the message stays valid UTF-8 as gRPC requires.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
