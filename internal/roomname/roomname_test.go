package roomname_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/roomcast/roomcast/internal/roomname"
)

// The messages reach clients (room names) and operators (patterns): they
// are pinned word for word.
func TestValidateMessages(t *testing.T) {
	long := strings.Repeat("a", roomname.MaxLen+1)
	for _, tc := range []struct{ name, want string }{
		{"chat.room-42", ""},
		{"tenant:7.orders_v2@eu=1", ""},
		{strings.Repeat("a", roomname.MaxLen), ""},
		{"", "room name is empty"},
		{long, "room name is 201 bytes long; the limit is 200"},
		{".chat", `room name ".chat" starts or ends with a dot`},
		{"chat.", `room name "chat." starts or ends with a dot`},
		{"a b..c", `room name "a b..c" has an empty segment ("..")`},
		{"chat.*", `room name "chat.*" has a character that is not allowed at byte 5 (allowed: A-Z a-z 0-9 - _ : @ = and . between segments)`},
		{"caf\xc3\xa9", `room name "café" has a character that is not allowed at byte 3 (allowed: A-Z a-z 0-9 - _ : @ = and . between segments)`},
		// Cut at 64 bytes, within a character, which %q then escapes.
		{"a" + strings.Repeat("é", 40), `room name "a` + strings.Repeat("é", 31) + `\xc3..." has a character that is not allowed at byte 1 (allowed: A-Z a-z 0-9 - _ : @ = and . between segments)`},
	} {
		got := ""
		if err := roomname.Validate(tc.name); err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("Validate(%q) = %q, want %q", tc.name, got, tc.want)
		}
		if roomname.Valid(tc.name) != (tc.want == "") {
			t.Errorf("Valid(%q) = %v, but Validate says %q", tc.name, roomname.Valid(tc.name), got)
		}
	}
}

func TestCheckPatternMessages(t *testing.T) {
	for _, tc := range []struct{ pattern, want string }{
		{"chat.lobby", ""},
		{"a.*.c.>", ""},
		{">", ""},
		{"", "it is empty"},
		{strings.Repeat("a", roomname.MaxLen+1), "it is 201 bytes long; the limit is 200"},
		{".a", "it starts or ends with a dot"},
		{"a..b", `it has an empty segment ("..")`},
		{"chat.>.x", `">" may only be the last segment (segment 2 of the pattern is ">")`},
		{"chat.*x", `"*" must be a whole segment, as in "chat.*" (segment 2 is "*x")`},
		{"chat.lob>", `">" must be a whole segment, as in "chat.>" (segment 2 is "lob>")`},
		// Cut at 64 bytes or just before, between characters.
		{"a.*" + strings.Repeat("ä", 40), `"*" must be a whole segment, as in "chat.*" (segment 2 is "*` + strings.Repeat("ä", 31) + `...")`},
		{"chat.l\xffbby", "segment 2 has a character that is not allowed at byte 6 (allowed: A-Z a-z 0-9 - _ : @ =, dots between segments, and * or > as a whole segment)"},
	} {
		got := ""
		if err := roomname.CheckPattern(tc.pattern); err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("CheckPattern(%q) = %q, want %q", tc.pattern, got, tc.want)
		}
	}
}

// FuzzGrammar checks the grammar against the one in the package comment,
// spelt out on split segments: room names, patterns, and that a pattern
// without wildcards is exactly a room name. Every refusal must explain
// itself in valid UTF-8, as gRPC status messages must be.
func FuzzGrammar(f *testing.F) {
	for _, s := range []string{"chat.room-42", "a..b", "\xff", "chat.*", "chat.>.x", "*x", ">"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		nameErr, patErr := roomname.Validate(s), roomname.CheckPattern(s)
		for _, err := range []error{nameErr, patErr} {
			if err != nil && (err.Error() == "" || !utf8.ValidString(err.Error())) {
				t.Fatalf("%q: bad message %q", s, err)
			}
		}
		if roomname.Valid(s) != (nameErr == nil) {
			t.Fatalf("%q: Valid says %v, Validate says %v", s, roomname.Valid(s), nameErr)
		}
		name, pattern, wild := reference(s)
		if (nameErr == nil) != name {
			t.Fatalf("%q: Validate = %v; the reference says name %v", s, nameErr, name)
		}
		if (patErr == nil) != pattern {
			t.Fatalf("%q: CheckPattern = %v; the reference says pattern %v", s, patErr, pattern)
		}
		if pattern && !wild && !name {
			t.Fatalf("%q is a pattern without wildcards but not a room name", s)
		}
	})
}

// reference decides the grammar the plain way: whether s is a room name,
// whether it is a pattern, and whether it has a wildcard segment.
func reference(s string) (name, pattern, wild bool) {
	if s == "" || len(s) > roomname.MaxLen {
		return false, false, false
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:@="
	name, pattern = true, true
	segs := strings.Split(s, ".")
	for i, seg := range segs {
		plain := seg != "" && strings.Trim(seg, alphabet) == ""
		name = name && plain
		switch {
		case seg == "*", seg == ">" && i == len(segs)-1:
			wild = true
		case !plain:
			pattern = false
		}
	}
	return name, pattern, wild
}
