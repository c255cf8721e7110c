package server_test

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// A credential's loop that ignores its advice over many connections, each
// within the connection's crowded allowance, is paused once the
// credential's crowded refusals within the second pass the credential's
// allowance: counted per connection only, 20 connections could make 20 times
// the refusals of one unpaused. The allowances are 25 a connection and 40
// a credential; each of 8 connections makes at most 20 publishes, about
// 160 in all, all but two of them crowded at a rate of one a second (the
// first refusal is told the next token, every later one the longest
// advice), so that a loaded machine need not make many within a second.
func TestCrowdedRefusalsArePausedPerCredential(t *testing.T) {
	const conns, calls, perConn, perCredential = 8, 20, 25, 40
	var mu sync.Mutex
	var pauses []time.Duration
	var paused atomic.Bool
	reg := prometheus.NewRegistry()
	addr := testjwt.StartServer(t, server.WithPublishRate(1, 1), server.WithCrowdedAllowance(perConn, perCredential), server.WithMetrics(reg),
		server.WithTapPauseHook(func(d time.Duration) {
			paused.Store(true)
			mu.Lock()
			pauses = append(pauses, d)
			mu.Unlock()
		}))
	ctx := bearer(testCtx(t), testjwt.Token(t, "svc", time.Now().Add(time.Hour), testjwt.Grants(t, ">", "", "")))
	var tally publishTally
	var wg sync.WaitGroup
	for range conns {
		c := dial(t, addr)
		wg.Go(func() {
			// Stopping at the first pause keeps the pauses, which double to a
			// second, short.
			for range calls {
				if paused.Load() || ctx.Err() != nil {
					return
				}
				tally.publish(ctx, t, c)
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(pauses) == 0 {
		t.Fatalf("no connection paused: %d publishes refused, %d succeeded, over %d connections of one credential", tally.refused.Load(), tally.ok.Load(), conns)
	}
	if m := slices.Min(pauses); m != time.Millisecond {
		t.Errorf("the shortest pause: %v, want 1ms, the first past the credential's allowance", m)
	}
	// Every call has had its answer, so every pause is over and counted.
	pausedFor := func(kind string) float64 {
		return counterOf(t, reg, "roomcast_refused_call_paused_seconds_total", map[string]string{"kind": kind})
	}
	if got, least := pausedFor("crowded"), slices.Min(pauses).Seconds(); got < least {
		t.Errorf("roomcast_refused_call_paused_seconds_total{kind=crowded} is %v, want at least the shortest pause's %v", got, least)
	}
	if got := pausedFor("refused"); got != 0 {
		t.Errorf("roomcast_refused_call_paused_seconds_total{kind=refused} is %v, want 0", got)
	}
	t.Logf("%d publishes refused, %d succeeded; pauses %v", tally.refused.Load(), tally.ok.Load(), pauses)
}
