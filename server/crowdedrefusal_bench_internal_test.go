package server

import (
	"testing"

	"github.com/roomcast/roomcast/auth"
)

// BenchmarkCrowdedRefusal is a History call's refusal in a flood that
// ignores its advice, at a read rate of 10 a second in bursts of 200,
// whose longest advice (20 s) is past the statuses shared by millisecond:
// from the limiter's decision to the status.
func BenchmarkCrowdedRefusal(b *testing.B) {
	cfg, err := newConfig([]Option{WithReadRate(10, 200)})
	if err != nil {
		b.Fatal(err)
	}
	a, err := newAccess(&cfg)
	if err != nil {
		b.Fatal(err)
	}
	id := &auth.Identity{Subject: "alice", Method: auth.MethodAPIKey}
	for range 1000 { // the burst, then the slots
		_, _ = a.takeRead(id)
	}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = a.takeRead(id) // one call in ten million or so finds a token
	}
}
