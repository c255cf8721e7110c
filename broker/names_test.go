package broker_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/roomcast/roomcast/broker"
)

func TestValidateRoom(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"chat", true},
		{"chat.room-42", true},
		{"tenant:7.orders_v2@eu=1", true},
		{strings.Repeat("a", broker.MaxRoomLen), true},
		{"", false},
		{strings.Repeat("a", broker.MaxRoomLen+1), false},
		{".chat", false},
		{"chat.", false},
		{"a..b", false},
		{"a b", false},
		{"chat.*", false},
		{"chat.>", false},
		{"caf\xc3\xa9", false},
		{"bad\xffutf8", false},
		{"nul\x00", false},
		{"tab\t", false},
	} {
		err := broker.ValidateRoom(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateRoom(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !utf8.ValidString(err.Error()) {
			t.Errorf("ValidateRoom(%q) message is not valid UTF-8: %q", tc.name, err)
		}
	}
}
