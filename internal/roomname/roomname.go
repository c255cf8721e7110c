// Package roomname is the one grammar of room names and of the grant
// patterns that select them. The broker checks names with it (through
// broker.ValidateRoom) and auth parses patterns with it (auth.ParsePattern),
// so a pattern without wildcards is a valid room name, and the reverse, by
// construction rather than by a test that compares two copies.
//
// A room name is 1 to MaxLen bytes of dot-separated segments; a segment is
// one or more of the characters A-Z a-z 0-9 - _ : @ =. A pattern is the same
// but for two more kinds of segment: "*", and ">" as the last one.
//
// Error messages are worded for the client that sent the name: they are
// valid UTF-8, as gRPC status messages must be, however invalid the name.
package roomname

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxLen is the longest room name, and the longest pattern, in bytes.
const MaxLen = 200

// Validate returns nil if name is a room name, or else an error saying what
// is wrong with it, for the client.
func Validate(name string) error {
	p := scan(name, false)
	switch p.fault {
	case none:
		return nil
	case empty:
		return fmt.Errorf("room name is empty")
	case tooLong:
		return fmt.Errorf("room name is %d bytes long; the limit is %d", len(name), MaxLen)
	case edgeDot:
		return fmt.Errorf("room name %q starts or ends with a dot", name)
	case emptySegment:
		return fmt.Errorf("room name %q has an empty segment (\"..\")", name)
	default: // badChar: a name has no wildcards
		return fmt.Errorf("room name %q has a character that is not allowed at byte %d (allowed: A-Z a-z 0-9 - _ : @ = and . between segments)", clip(name), p.at)
	}
}

// Valid reports whether name is a room name. Unlike Validate it does not
// allocate, for callers that check every room of every call.
func Valid(name string) bool { return scan(name, false).fault == none }

// CheckPattern returns nil if s is a pattern, or else an error saying what
// is wrong with it without quoting s, so that the caller can name s as it
// names everything else.
func CheckPattern(s string) error {
	p := scan(s, true)
	switch p.fault {
	case none:
		return nil
	case empty:
		return errors.New("it is empty")
	case tooLong:
		return fmt.Errorf("it is %d bytes long; the limit is %d", len(s), MaxLen)
	case edgeDot:
		return errors.New("it starts or ends with a dot")
	case emptySegment:
		return errors.New(`it has an empty segment ("..")`)
	case lateTail:
		return fmt.Errorf(`">" may only be the last segment (segment %d of the pattern is ">")`, p.segment)
	case splitWildcard:
		c := s[p.at]
		return fmt.Errorf(`%q must be a whole segment, as in "chat.%c" (segment %d is %s)`, string(c), c, p.segment, quoteClipped(s[p.start:p.end]))
	default:
		return fmt.Errorf("segment %d has a character that is not allowed at byte %d (allowed: A-Z a-z 0-9 - _ : @ =, dots between segments, and * or > as a whole segment)", p.segment, p.at)
	}
}

// segmentChar reports whether c may appear in a segment of a room name.
func segmentChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case c == '-', c == '_', c == ':', c == '@', c == '=':
		return true
	}
	return false
}

// fault is the kind of the first thing wrong with a name or pattern.
type fault uint8

const (
	none          fault = iota
	empty               // ""
	tooLong             // over MaxLen bytes
	edgeDot             // a dot first or last
	emptySegment        // ".."
	badChar             // a byte outside the segment alphabet
	splitWildcard       // in a pattern, "*" or ">" within a longer segment
	lateTail            // in a pattern, ">" before the last segment
)

// problem is the first thing wrong with a name or pattern, and where.
type problem struct {
	fault      fault
	at         int // badChar, splitWildcard: the byte's offset
	segment    int // badChar, splitWildcard, lateTail: the segment's number, from 1
	start, end int // splitWildcard: the segment's bytes
}

// scan checks s as a room name or, with wildcards, as a pattern. The checks
// run in a fixed order, whole-string ones first, then segment by segment,
// so that a string with several faults is always told the same one.
func scan(s string, wildcards bool) problem {
	switch {
	case s == "":
		return problem{fault: empty}
	case len(s) > MaxLen:
		return problem{fault: tooLong}
	case s[0] == '.' || s[len(s)-1] == '.':
		return problem{fault: edgeDot}
	}
	for i := 1; i < len(s); i++ {
		if s[i] == '.' && s[i-1] == '.' {
			return problem{fault: emptySegment}
		}
	}
	segment, start := 1, 0
	for end := 0; end <= len(s); end++ {
		if end < len(s) && s[end] != '.' {
			continue
		}
		if p := scanSegment(s, start, end, segment, wildcards); p.fault != none {
			return p
		}
		segment, start = segment+1, end+1
	}
	return problem{}
}

// scanSegment checks s[start:end], segment number n of s.
func scanSegment(s string, start, end, n int, wildcards bool) problem {
	if wildcards {
		switch s[start:end] {
		case "*":
			return problem{}
		case ">":
			if end < len(s) {
				return problem{fault: lateTail, segment: n}
			}
			return problem{}
		}
	}
	for i := start; i < end; i++ {
		c := s[i]
		switch {
		case segmentChar(c):
		case wildcards && (c == '*' || c == '>'):
			return problem{fault: splitWildcard, at: i, segment: n, start: start, end: end}
		default:
			return problem{fault: badChar, at: i, segment: n}
		}
	}
	return problem{}
}

// clip shortens a room name for a message; %q then escapes whatever it
// holds, a character cut in two included.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// quoteClipped quotes a piece of a pattern for a message, shortened between
// characters rather than within one as clip does: pattern messages have
// always been worded this way, name messages the other.
func quoteClipped(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > max-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return strconv.Quote(s)
}
