package redisengine

import (
	"strconv"
	"strings"
	"testing"
)

// formatFrame is what the publish script sends (see publishSrc).
func formatFrame(f frame) string {
	return "m:" + strconv.FormatUint(f.offset, 10) + ":" + f.epoch + ":" + strconv.FormatInt(f.time, 10) + ":" +
		strconv.Itoa(len(f.exclude)) + ":" + f.exclude + f.body
}

func TestParseFrame(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want frame
		ok   bool
	}{
		{"m:1:EPOCH:1700000000000000000:0:body", frame{1, "EPOCH", 1700000000000000000, "", "body"}, true},
		{"m:18446744073709551615:E:-5:3:a:bx:y:z", frame{1<<64 - 1, "E", -5, "a:b", "x:y:z"}, true},
		{"m:7:E:0:0:", frame{7, "E", 0, "", ""}, true},
		{"", frame{}, false},
		{"p:1:2:J:member", frame{}, false},                 // a presence frame is not a message
		{"m:0:E:0:0:body", frame{}, false},                 // offset 0 is never given
		{"m:1::0:0:body", frame{}, false},                  // no epoch
		{"m:x:E:0:0:body", frame{}, false},                 // offset not a number
		{"m:18446744073709551616:E:0:0:b", frame{}, false}, // offset past 2^64-1
		{"m:1:E:t:0:body", frame{}, false},                 // time not a number
		{"m:1:E:0:5:abc", frame{}, false},                  // exclude longer than the rest
		{"m:1:E:0:-1:abc", frame{}, false},                 // negative length
		{"m:1:E:0", frame{}, false},                        // header cut short
	} {
		got, err := parseFrame(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseFrame(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// Whatever the input, parseFrame does not panic, and what it accepts is a
// frame that formats to an input it parses the same way.
func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{
		"m:1:EPOCH:1700000000000000000:0:body",
		"m:42:ABCDEFGHIJKLM:1:6:sess-1\x0a\x05hello",
		"m:1:E:0:0:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fr, err := parseFrame(s)
		if err != nil {
			return
		}
		if fr.offset == 0 || fr.epoch == "" || strings.Contains(fr.epoch, ":") || !strings.HasSuffix(s, fr.exclude+fr.body) {
			t.Fatalf("parseFrame(%q) accepted %+v", s, fr)
		}
		again, err := parseFrame(formatFrame(fr))
		if err != nil || again != fr {
			t.Fatalf("parseFrame(%q) = %+v, formatted and parsed again %+v, %v", s, fr, again, err)
		}
	})
}
