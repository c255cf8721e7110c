package server

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/status"
)

// Large requests take turns. Decoding a 1 MiB publish copies it into
// memory of its own, and a payload the broker retains is fresh memory: on
// this project's machines the copy's page faults cost one to three
// milliseconds a megabyte, in a run that sysmon alone preempts (after 10
// ms). While every P is busy, Go polls the network only as often, so a
// bystander's message that arrived meanwhile waits for the run to end.
// Under issue #13's attack (b), 1 MiB publishes from 8 goroutines, the
// handlers decoding them ran back to back on the server's Ps, and a
// bystander's deliveries waited behind them (docs/attacks.md, "Large
// requests take turns").
//
// So a request of a turn's minimum size or more (DefaultLargeRequestTurn)
// is decoded in a turn: one at a time over the server, each followed by a
// rest as long as it took, at most maxTurnRest, before the next begins. In
// the rest a P is left without a large request to decode, and one that
// has nothing else to do polls the network. Large requests so take at
// most half of one core's time while they queue, and smaller ones never
// wait. A request waits for its turn while its call lasts: a call
// cancelled meanwhile ends with its context's code, and its turn passes.
// The web listener's requests take none: connect-go reads and decodes
// them before their call's context is at hand, and turns there changed
// nothing measurable under (b).
//
// The turn is a token in a channel of one; restUntil belongs to whoever
// holds it.

// DefaultLargeRequestTurn is the smallest request that takes a turn (see
// WithLargeRequestTurns): 64 KiB, what a large publish is decoded in place
// from (publishinplace.go).
const DefaultLargeRequestTurn = inPlaceMin

// maxTurnRest bounds a rest: a decode whose thread the kernel took away
// for long is not made to cost as much again.
const maxTurnRest = 10 * time.Millisecond

// WithLargeRequestTurns has requests of minBytes or more on the gRPC port
// (not the web listener's) decoded one at a time over the server, each followed by a rest as long as it took (at
// most 10 ms), so that decoding large requests into fresh memory takes at
// most half of one core and leaves the others' calls time to be read; a
// request waits for its turn while its call lasts. Time spent waiting is
// in roomcast_large_request_wait_seconds_total. 0 turns it off. The
// default is DefaultLargeRequestTurn (64 KiB).
func WithLargeRequestTurns(minBytes int) Option {
	return func(c *config) { c.largeTurn = minBytes }
}

// largeTurns hands out the turns of large requests. It is safe for
// concurrent use.
type largeTurns struct {
	min   int           // requests of min bytes or more take a turn
	token chan struct{} // holds the turn while nobody has it
	// restUntil is when the next turn may begin. Only the token's holder
	// reads or writes it; the channel orders its holders.
	restUntil time.Time
	now       func() time.Time
	// rest waits d, or until ctx is done, and returns ctx's error then.
	rest func(ctx context.Context, d time.Duration) error

	waiting atomic.Int64  // requests waiting for a turn now
	turns   atomic.Uint64 // turns taken
	waited  atomic.Int64  // nanoseconds waited for them, rests included
	gaveUp  atomic.Uint64 // requests whose call ended while they waited
}

// newLargeTurns returns the turns of requests of min bytes or more, or nil
// if min is 0: no request takes one.
func newLargeTurns(min int) *largeTurns {
	if min <= 0 {
		return nil
	}
	t := &largeTurns{min: min, token: make(chan struct{}, 1), now: time.Now, rest: sleepCtx}
	t.token <- struct{}{}
	return t
}

// takes reports whether a request of n bytes takes a turn; false on nil.
func (t *largeTurns) takes(n int) bool { return t != nil && n >= t.min }

// take waits for a turn, then for the rest after the turn before it, and
// returns the function that ends the turn, which must be called once the
// request is decoded. If ctx ends first it returns ctx's status error
// (CANCELED or DEADLINE_EXCEEDED) and no turn. A nil ctx never ends.
func (t *largeTurns) take(ctx context.Context) (done func(), err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	start := t.now()
	t.waiting.Add(1)
	defer t.waiting.Add(-1)
	select {
	case <-t.token:
	case <-ctx.Done():
		t.gaveUp.Add(1)
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if d := t.restUntil.Sub(t.now()); d > 0 {
		if err := t.rest(ctx, d); err != nil {
			t.token <- struct{}{} // the rest goes on for the next taker
			t.gaveUp.Add(1)
			return nil, status.FromContextError(err).Err()
		}
	}
	began := t.now()
	t.turns.Add(1)
	t.waited.Add(int64(began.Sub(start)))
	return func() {
		end := t.now()
		t.restUntil = end.Add(min(end.Sub(began), maxTurnRest))
		t.token <- struct{}{}
	}, nil
}

// sleepCtx waits d, or until ctx is done, and returns ctx's error then.
func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var (
	largeTurnsDesc = prometheus.NewDesc("roomcast_large_request_turns_total",
		"Requests of --large-request-turn bytes or more decoded in a turn: one at a time, each followed by a rest as long as it took.", nil, nil)
	largeWaitDesc = prometheus.NewDesc("roomcast_large_request_wait_seconds_total",
		"Time requests of --large-request-turn bytes or more waited for their turns, the rests after the turns before them included.", nil, nil)
	largeWaitingDesc = prometheus.NewDesc("roomcast_large_requests_waiting",
		"Requests of --large-request-turn bytes or more waiting for their turns now.", nil, nil)
	largeGaveUpDesc = prometheus.NewDesc("roomcast_large_request_turns_abandoned_total",
		"Requests of --large-request-turn bytes or more whose call ended (cancelled, or past its deadline) while they waited for a turn.", nil, nil)
)

// Describe implements prometheus.Collector.
func (t *largeTurns) Describe(ch chan<- *prometheus.Desc) {
	ch <- largeTurnsDesc
	ch <- largeWaitDesc
	ch <- largeGaveUpDesc
	ch <- largeWaitingDesc
}

// Collect implements prometheus.Collector.
func (t *largeTurns) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(largeTurnsDesc, prometheus.CounterValue, float64(t.turns.Load()))
	ch <- prometheus.MustNewConstMetric(largeWaitDesc, prometheus.CounterValue, time.Duration(t.waited.Load()).Seconds())
	ch <- prometheus.MustNewConstMetric(largeGaveUpDesc, prometheus.CounterValue, float64(t.gaveUp.Load()))
	ch <- prometheus.MustNewConstMetric(largeWaitingDesc, prometheus.GaugeValue, float64(t.waiting.Load()))
}
