package server_test

import (
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// A loop past a publish rate is paused once its credential's crowded
// refusals within the second pass a fifth of the rate, and at least 100
// (see crowdedAllowance), not the 1000 a connection may have past any
// rate: at a rate of one a second, after its 100th. The first refusal is
// told the next token; each after it is crowded. It holds for an anonymous
// caller's address, in an open server and past the anonymous publish rate
// of a server with credentials, and for a credential.
func TestAPublishLoopIsPausedPastItsRatesAllowance(t *testing.T) {
	const allowance = 100
	cases := []struct {
		name       string
		opts       []server.Option
		credential bool
	}{
		{"open", []server.Option{server.WithPublishRate(1, 1)}, false},
		{"anonymous", []server.Option{server.WithAuthenticator(anonymousAuthenticator(t)), server.WithPublishRate(1000, 1000), server.WithAnonymousPublishRate(1, 1)}, false},
		{"credential", []server.Option{server.WithAuthenticator(anonymousAuthenticator(t)), server.WithPublishRate(1, 1), server.WithAnonymousPublishRate(1000, 1000)}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var refused, pausedAt atomic.Int64
			opts := append(tc.opts, server.WithMaxRefusedCalls(0), server.WithTapPauseHook(func(time.Duration) {
				pausedAt.CompareAndSwap(0, refused.Load())
			}))
			_, addr := start(t, opts...)
			ctx := testCtx(t)
			if tc.credential {
				ctx = bearer(ctx, testjwt.Token(t, "svc", time.Now().Add(time.Hour), testjwt.Grants(t, ">", "", "")))
			}
			c := dial(t, addr)
			req := &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Text{Text: "x"}}
			if _, err := c.Publish(ctx, req); err != nil {
				t.Fatalf("the publish within the burst: %v", err)
			}
			for pausedAt.Load() == 0 && refused.Load() < 3*allowance {
				if _, err := c.Publish(ctx, req); status.Code(err) != codes.ResourceExhausted {
					t.Fatalf("publish %d past the rate: %v, want RESOURCE_EXHAUSTED", refused.Load(), err)
				}
				refused.Add(1)
			}
			// The pause comes after the refusal that passed the allowance
			// (the 102nd: the first is not crowded), or later if a second
			// passed meanwhile and its count began again.
			switch n := pausedAt.Load(); {
			case n == 0:
				t.Errorf("not paused after %d refusals, want paused past %d crowded", refused.Load(), allowance)
			case n < allowance+1:
				t.Errorf("paused after %d refusals, want past the first and %d crowded", n, allowance)
			}
		})
	}
}
