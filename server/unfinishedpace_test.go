package server_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomcast/roomcast/server"
)

// While an address holds more than a quarter of its share in unfinished
// requests, what its reads add is read at the unfinished read rate (past
// a burst), in plaintext and under TLS: the server answers a PING sent
// after the publishes only once it has read them at that pace, and counts
// the wait. The publishes are slowed, not cut: they finish. Without
// pacing, nothing waits.
func TestUnfinishedReadsArePacedPastAQuarterOfTheShare(t *testing.T) {
	const (
		rate    = 1 << 20  // a second
		burst   = 64 << 10 // the least burst, past a 32nd of the rate
		calls   = 8
		msgSize = 60 << 10
	)
	for _, tr := range rawTransports(t) {
		for _, paced := range []bool{true, false} {
			name := tr.name + "/paced"
			opt := server.WithUnfinishedReadRate(rate)
			if !paced {
				name, opt = tr.name+"/unpaced", server.WithUnfinishedReadRate(0)
			}
			t.Run(name, func(t *testing.T) {
				reg := prometheus.NewRegistry()
				addr := unfinishedServer(t, reg, append(tr.opts, opt)...)
				ctx := within(t, 20*time.Second)
				msg := publishBytes(t, "paced", msgSize)
				c := tr.connectRaw(t, addr)
				start := time.Now()
				ids := holdPublishes(t, c, calls, msg, 1) // within the budget: nothing is cut
				took := time.Since(start)
				held := calls * heldBy(len(msg)-1)
				waited := counter(t, reg, "roomcast_unfinished_request_paced_seconds_total")
				if !paced {
					if waited != 0 {
						t.Fatalf("an unpaced server counted %v s of paced reads", waited)
					}
				} else {
					// What the address added past a quarter of its share,
					// less the burst, at the rate: the least the reads took.
					least := time.Duration((held - unfinishedShare/4 - burst) / rate * float64(time.Second))
					if took < least || waited <= 0 {
						t.Fatalf("%v held read in %v, with %v s counted paced; want at least %v, counted", held, took, waited, least)
					}
				}
				for _, id := range ids {
					if err := finishRequest(c, id, msg[len(msg)-1:]); err != nil {
						t.Fatal(err)
					}
					if end, err := c.WaitStream(ctx, id); err != nil || end.Status != "0" {
						t.Fatalf("a paced publish ended %+v, %v; want OK", end, err)
					}
				}
				if n := counter(t, reg, "roomcast_unfinished_request_closes_total"); n != 0 {
					t.Errorf("roomcast_unfinished_request_closes_total = %v, want 0", n)
				}
			})
		}
	}
}
