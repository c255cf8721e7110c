package auth_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/internal/roomname"
)

func TestParsePatternValid(t *testing.T) {
	for _, s := range []string{
		"chat", "chat.lobby", "chat.*", "chat.>", ">", "*", "*.lobby", "*.*", "a.*.c.>",
		"tenant:7.orders", "user@example=1.x-y_z", strings.Repeat("a", auth.MaxPatternLen),
	} {
		p, err := auth.ParsePattern(s)
		if err != nil {
			t.Errorf("ParsePattern(%q): %v", s, err)
			continue
		}
		if p.String() != s {
			t.Errorf("ParsePattern(%q).String() = %q", s, p.String())
		}
	}
}

func TestParsePatternInvalid(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "it is empty"},
		{strings.Repeat("a", auth.MaxPatternLen+1), "201 bytes long; the limit is 200"},
		{".chat", "starts or ends with a dot"},
		{"chat.", "starts or ends with a dot"},
		{"chat..lobby", "empty segment"},
		{"chat.>.x", `">" may only be the last segment (segment 2`},
		{">.>", `">" may only be the last segment`},
		{"chat.*x", `"*" must be a whole segment, as in "chat.*" (segment 2 is "*x")`},
		{"chat.lob>", `">" must be a whole segment`},
		{"chat.**", `"*" must be a whole segment`},
		{"chat room", "not allowed at byte 4"},
		{"chat.l\xffbby", "not allowed at byte 6"},
		{"chät", "not allowed at byte 2"},
		{"a/b", "not allowed at byte 1"},
		{strings.Repeat("ä", 40), `"` + strings.Repeat("ä", 32) + `..."`}, // clipped between characters
	} {
		_, err := auth.ParsePattern(tc.in)
		if err == nil {
			t.Errorf("ParsePattern(%q) succeeded", tc.in)
			continue
		}
		msg := err.Error()
		if !errors.Is(err, auth.ErrInvalidPattern) || !strings.HasPrefix(msg, "invalid room pattern ") || !strings.Contains(msg, tc.want) {
			t.Errorf("ParsePattern(%q) = %q; want ErrInvalidPattern mentioning %q", tc.in, msg, tc.want)
		}
		if !utf8.ValidString(msg) {
			t.Errorf("ParsePattern(%q) error is not valid UTF-8: %q", tc.in, msg)
		}
	}
}

func TestPatternMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		yes, no []string
	}{
		{"chat.lobby", []string{"chat.lobby"}, []string{"chat", "chat.lobby.x", "chat.lobbyx", "Chat.lobby", "x.chat.lobby"}},
		{"chat.*", []string{"chat.lobby", "chat.x"}, []string{"chat", "chat.a.b", "chatx.a", "lobby"}},
		{"chat.>", []string{"chat.lobby", "chat.a.b", "chat.a.b.c"}, []string{"chat", "chats.a", "x.chat.a"}},
		{">", []string{"a", "a.b", "tenant:7.orders.x"}, []string{""}},
		{"*", []string{"a", "chat"}, []string{"a.b"}},
		{"*.lobby", []string{"chat.lobby", "game.lobby"}, []string{"lobby", "a.b.lobby", "chat.lobby.x"}},
		{"a.*.c.>", []string{"a.b.c.d", "a.x.c.d.e"}, []string{"a.b.c", "a.b.x.d", "a.c.d"}},
		{"*.*", []string{"a.b"}, []string{"a", "a.b.c"}},
		// Invalid room names match nothing, not even through wildcards.
		{">", nil, []string{"a..b", ".a", "a.", "chat.*", "a b", strings.Repeat("a", 201)}},
		{"chat.*", nil, []string{"chat.*", "chat.", "chat.a b"}},
	} {
		p, err := auth.ParsePattern(tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, room := range tc.yes {
			if !p.Match(room) {
				t.Errorf("%q does not match %q", tc.pattern, room)
			}
		}
		for _, room := range tc.no {
			if p.Match(room) {
				t.Errorf("%q matches %q", tc.pattern, room)
			}
		}
	}
	var zero auth.Pattern
	if zero.Match("a") || zero.IsExact() {
		t.Error("the zero Pattern matches something or is exact")
	}
}

func TestPatternIsExact(t *testing.T) {
	for s, want := range map[string]bool{"chat": true, "chat.lobby": true, "chat.*": false, "chat.>": false, ">": false, "*.a": false} {
		p, err := auth.ParsePattern(s)
		if err != nil {
			t.Fatal(err)
		}
		if p.IsExact() != want {
			t.Errorf("ParsePattern(%q).IsExact() = %v", s, !want)
		}
	}
}

// TestRoomRulesAgree checks that the patterns without wildcards are
// exactly the room names.
func TestRoomRulesAgree(t *testing.T) {
	for _, s := range []string{"chat.lobby", "", ".", "a..b", "a.", "a b", "chat.*", "x>", "tenant:7", strings.Repeat("b", 200), strings.Repeat("b", 201), "\xff", "A-Z_a=z@0:9"} {
		roomErr := roomname.Validate(s)
		p, err := auth.ParsePattern(s)
		exact := err == nil && p.IsExact()
		if (roomErr == nil) != exact {
			t.Errorf("%q: roomname.Validate = %v, but ParsePattern = %v (exact %v)", s, roomErr, err, exact)
		}
	}
}

func TestPatternText(t *testing.T) {
	var ps []auth.Pattern
	if err := json.Unmarshal([]byte(`["chat.*", ">"]`), &ps); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(ps)
	if err != nil || string(out) != `["chat.*","\u003e"]` && string(out) != `["chat.*",">"]` {
		t.Fatalf("Marshal = %s, %v", out, err)
	}
	err = json.Unmarshal([]byte(`["chat.>.x"]`), &ps)
	if !errors.Is(err, auth.ErrInvalidPattern) {
		t.Fatalf("Unmarshal of a bad pattern: %v", err)
	}
	if _, err := json.Marshal(auth.Pattern{}); err == nil {
		t.Fatal("the zero Pattern encoded")
	}
}
