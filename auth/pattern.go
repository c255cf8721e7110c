package auth

import (
	"errors"
	"fmt"
	"strings"

	"github.com/roomcast/roomcast/internal/roomname"
)

// MaxPatternLen is the longest room pattern accepted, in bytes. It equals
// the longest room name the broker accepts.
const MaxPatternLen = roomname.MaxLen

// ErrInvalidPattern is wrapped by every error of ParsePattern.
var ErrInvalidPattern = errors.New("invalid room pattern")

// Pattern selects room names. It is an exact room name, or a dotted pattern
// whose segments may be the wildcards "*" (exactly one segment) and, as the
// last segment only, ">" (one or more segments):
//
//	chat.lobby   matches chat.lobby only
//	chat.*       matches chat.lobby, not chat or chat.a.b
//	chat.>       matches chat.lobby and chat.a.b, not chat
//	*.lobby      matches chat.lobby and game.lobby
//	>            matches every room
//
// Room names follow the broker's rules: 1 to 200 bytes of dot-separated
// segments of A-Z a-z 0-9 - _ : @ =. The zero Pattern matches nothing.
// A Pattern is an immutable value, safe for concurrent use.
type Pattern struct {
	s string
}

// ParsePattern validates s and returns it as a Pattern. Its errors wrap
// ErrInvalidPattern and say what is wrong, for example
// `invalid room pattern "chat.>.x": ">" may only be the last segment`.
func ParsePattern(s string) (Pattern, error) {
	if err := roomname.CheckPattern(s); err != nil {
		return Pattern{}, fmt.Errorf("%w %s: %s", ErrInvalidPattern, quote(s), err)
	}
	return Pattern{s: s}, nil
}

// ParsePatterns parses each of ss with ParsePattern, stopping at the first
// error.
func ParsePatterns(ss ...string) ([]Pattern, error) {
	ps := make([]Pattern, 0, len(ss))
	for _, s := range ss {
		p, err := ParsePattern(s)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// String returns the pattern as it was parsed.
func (p Pattern) String() string { return p.s }

// IsExact reports whether p has no wildcard, so that it matches exactly one
// room name: its own.
func (p Pattern) IsExact() bool {
	if p.s == "" {
		return false
	}
	rest := p.s
	for {
		seg, tail, more := strings.Cut(rest, ".")
		if seg == "*" || seg == ">" {
			return false
		}
		if !more {
			return true
		}
		rest = tail
	}
}

// Match reports whether room is a valid room name that p selects. It does
// not allocate.
func (p Pattern) Match(room string) bool {
	if p.s == "" || !roomname.Valid(room) {
		return false
	}
	pat := p.s
	for {
		pseg, prest, pmore := strings.Cut(pat, ".")
		if pseg == ">" {
			return true // room still has at least one segment here
		}
		rseg, rrest, rmore := strings.Cut(room, ".")
		if pseg != "*" && pseg != rseg {
			return false
		}
		if !pmore || !rmore {
			return pmore == rmore
		}
		pat, room = prest, rrest
	}
}

// MarshalText returns the pattern's text, so that Patterns encode as JSON
// strings.
func (p Pattern) MarshalText() ([]byte, error) {
	if p.s == "" {
		return nil, fmt.Errorf("%w: the zero Pattern cannot be encoded", ErrInvalidPattern)
	}
	return []byte(p.s), nil
}

// UnmarshalText parses text with ParsePattern.
func (p *Pattern) UnmarshalText(text []byte) error {
	q, err := ParsePattern(string(text))
	if err != nil {
		return err
	}
	*p = q
	return nil
}
