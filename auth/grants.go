package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Permission is one thing an identity may do in a room.
type Permission uint8

// The permissions a Grants gives per room pattern.
const (
	// Publish allows BrokerService.Publish to the room.
	Publish Permission = iota + 1
	// Subscribe allows joining the room on a Subscribe stream.
	Subscribe
	// Presence allows seeing who is in the room.
	Presence
)

// String returns the permission's name as used in claims and key files:
// "publish", "subscribe" or "presence".
func (p Permission) String() string {
	switch p {
	case Publish:
		return "publish"
	case Subscribe:
		return "subscribe"
	case Presence:
		return "presence"
	}
	return fmt.Sprintf("Permission(%d)", uint8(p))
}

// Grants says what an identity may do: for each permission, the patterns of
// the rooms it applies to, and whether the identity is an admin.
//
// Its JSON form is the "roomcast" claim of a JWT and the "grants" field of an
// API key entry:
//
//	{"publish": ["chat.*"], "subscribe": ["chat.>"], "presence": ["chat.*"], "admin": false}
//
// Every field is optional; a missing list grants nothing. Each pattern is
// checked with ParsePattern when decoding, and unknown fields are refused,
// so that a misspelt permission is reported rather than silently granting
// nothing.
//
// Admin allows the server's roomcast.v1.AdminService (listing rooms and
// sessions, ending sessions, closing rooms), and naming any open session in
// a publish's session_id or exclude_session. It never implies a room
// permission: an admin publishes and joins only where its room patterns
// allow.
//
// Grants is a value that this package never changes once built; callers
// that share one must not modify its slices. It is then safe for concurrent
// use.
type Grants struct {
	// Publish lists the rooms the identity may publish to.
	Publish []Pattern `json:"publish,omitempty"`
	// Subscribe lists the rooms the identity may join on a Subscribe stream.
	Subscribe []Pattern `json:"subscribe,omitempty"`
	// Presence lists the rooms whose presence the identity may see.
	Presence []Pattern `json:"presence,omitempty"`
	// Admin allows AdminService and naming any open session in a
	// publish; it grants no room.
	Admin bool `json:"admin,omitempty"`
}

// Allows reports whether g gives perm in room: whether room is a valid room
// name that one of the patterns for perm matches.
func (g Grants) Allows(perm Permission, room string) bool {
	for _, p := range g.patterns(perm) {
		if p.Match(room) {
			return true
		}
	}
	return false
}

// IsZero reports whether g grants nothing at all.
func (g Grants) IsZero() bool {
	return len(g.Publish) == 0 && len(g.Subscribe) == 0 && len(g.Presence) == 0 && !g.Admin
}

func (g Grants) patterns(perm Permission) []Pattern {
	switch perm {
	case Publish:
		return g.Publish
	case Subscribe:
		return g.Subscribe
	case Presence:
		return g.Presence
	}
	return nil
}

// UnmarshalJSON decodes g from its JSON form, refusing unknown fields and
// invalid patterns. A JSON null leaves g unchanged.
func (g *Grants) UnmarshalJSON(data []byte) error {
	type plain Grants // no methods: avoids recursion
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var v plain
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return nil
	}
	*g = Grants(v)
	return nil
}
