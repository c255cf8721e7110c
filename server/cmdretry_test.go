package server_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/roomcast/roomcast/server"
)

// A command refused past the stream's or the credential's command rate
// says in its reply's Error.retry_after when it may be sent again: the
// time the rate takes to allow one more command.
func TestCommandRefusalsPastARateCarryRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name string
		rate server.Option
	}{
		// A token a second: the second join comes well within the second
		// the next token takes, even on a loaded machine.
		{"per stream", server.WithCommandRate(1, 1)},
		{"per credential", server.WithCredentialCommandRate(1, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := start(t, server.WithCommandRate(0, 0), tc.rate)
			s := subscribe(t, testCtx(t), dial(t, addr), "r0") // the burst
			rep := s.command(joinReq("j1", "r1", nil))
			e := rep.GetError()
			if codes.Code(e.GetCode()) != codes.ResourceExhausted {
				t.Fatalf("a join past the rate: %v, want RESOURCE_EXHAUSTED", rep)
			}
			if d := e.GetRetryAfter().AsDuration(); e.GetRetryAfter() == nil || d <= 0 || d > time.Second {
				t.Errorf("retry_after %v, want within (0, 1s]: a second makes a token", e.GetRetryAfter())
			}
		})
	}
}
