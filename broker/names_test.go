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

// FuzzValidateRoom checks that accepted names have the documented shape and
// that every refusal explains itself in valid UTF-8 (gRPC status messages
// must be).
func FuzzValidateRoom(f *testing.F) {
	f.Add("chat.room-42")
	f.Add("a..b")
	f.Add("\xff")
	f.Fuzz(func(t *testing.T, name string) {
		err := broker.ValidateRoom(name)
		if err != nil {
			if !utf8.ValidString(err.Error()) || err.Error() == "" {
				t.Fatalf("bad message %q", err)
			}
			return
		}
		if name == "" || len(name) > broker.MaxRoomLen {
			t.Fatalf("accepted length %d", len(name))
		}
		for _, seg := range strings.Split(name, ".") {
			if seg == "" || strings.Trim(seg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:@=") != "" {
				t.Fatalf("accepted %q with segment %q", name, seg)
			}
		}
	})
}
