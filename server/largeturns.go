package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
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
// One client must not make the others wait behind a queue of its own: a
// request first waits for its client address's turn (an IPv6 address by
// its /64, as the other per-address limits), and only the address's
// first in line waits for the server's. Channels serve their receivers in
// order, so the server's turns go round the addresses that have requests
// waiting, one each. What waits is held whole in memory, read but not yet
// decoded, so an address may have at most maxWaitingPerClient bytes
// waiting, and the server maxWaiting, past which a request is refused with
// RESOURCE_EXHAUSTED, but for an address's first, which may always wait
// (its memory is bounded by the connections' limits, as before turns).
//
// Lock order: largeTurns.mu is taken last, with nothing after it, and is
// never held while waiting. The server's turn is a token in a channel of
// one, an address's turn one of its own; restUntil belongs to whoever
// holds the server's token.

// DefaultLargeRequestTurn is the smallest request that takes a turn (see
// WithLargeRequestTurns): 64 KiB, what a large publish is decoded in place
// from (publishinplace.go).
const DefaultLargeRequestTurn = inPlaceMin

// maxTurnRest bounds a rest: a decode whose thread the kernel took away
// for long is not made to cost as much again. Decodes longer than it, of
// requests made to decode slowly, take more than half a core.
const maxTurnRest = 50 * time.Millisecond

// Bytes of large requests that may wait for turns: an address's (two
// bursts of the default publish byte rate, sixteen of the largest
// messages) and the server's.
const (
	maxWaitingPerClient = 16 << 20
	maxWaiting          = 256 << 20
)

// errLargeWaiting refuses a large request past maxWaitingPerClient or
// maxWaiting. Its message is fixed, so that errors.Is finds it.
var errLargeWaiting = status.Error(codes.ResourceExhausted, "too many large requests are waiting to be decoded, of this client or in all; retry once some of them have been")

// errStopping ends the wait of a large request when the server stops.
var errStopping = status.Error(codes.Unavailable, "the server is shutting down")

// WithLargeRequestTurns has requests of minBytes or more on the gRPC port
// (not the web listener's) decoded one at a time over the server, each
// followed by a rest as long as it took (at most 50 ms), so that decoding
// large requests into fresh memory takes at most half of one core and
// leaves the others' calls time to be read. A request waits for its
// client address's turn, then the server's, so the server's go round the
// addresses; it waits while its call lasts, and past 16 MiB of an
// address's requests waiting (the first excepted), or 256 MiB of the
// server's, it is refused with RESOURCE_EXHAUSTED. The turns are counted
// in roomcast_large_request_* metrics. 0 turns it off. The default is
// DefaultLargeRequestTurn (64 KiB).
func WithLargeRequestTurns(minBytes int) Option {
	return func(c *config) { c.largeTurn = minBytes }
}

// largeTurns hands out the turns of large requests. It is safe for
// concurrent use.
type largeTurns struct {
	min   int             // requests of min bytes or more take a turn
	token chan struct{}   // holds the server's turn while nobody has it
	stop  <-chan struct{} // closed when the server stops: waiting ends
	// restUntil is when the next turn may begin. Only the token's holder
	// reads or writes it; the channel orders its holders.
	restUntil time.Time
	now       func() time.Time
	// rest waits d, or until ctx is done or stop closed, and returns why
	// it ended early then.
	rest func(ctx context.Context, stop <-chan struct{}, d time.Duration) error

	mu      sync.Mutex
	clients map[string]*clientTurns // by client key, those with requests waiting; guarded by mu
	bytes   int64                   // of the requests waiting; guarded by mu

	waiting atomic.Int64  // requests waiting for a turn now
	turns   atomic.Uint64 // turns taken
	waited  atomic.Int64  // nanoseconds waited for them, rests included
	gaveUp  atomic.Uint64 // requests whose call ended while they waited
	refused atomic.Uint64 // requests refused past maxWaitingPerClient or maxWaiting
}

// clientTurns are one client address's requests waiting for turns.
type clientTurns struct {
	token   chan struct{} // holds the address's turn while nobody has it
	waiting int           // requests, guarded by largeTurns.mu
	bytes   int64         // their bytes, guarded by largeTurns.mu
}

// newLargeTurns returns the turns of requests of min bytes or more, whose
// waits end when stop is closed, or nil if min is 0: no request takes one.
func newLargeTurns(min int, stop <-chan struct{}) *largeTurns {
	if min <= 0 {
		return nil
	}
	t := &largeTurns{min: min, token: make(chan struct{}, 1), stop: stop, now: time.Now, rest: sleepCtx, clients: make(map[string]*clientTurns)}
	t.token <- struct{}{}
	return t
}

// takes reports whether a request of n bytes takes a turn; false on nil.
func (t *largeTurns) takes(n int) bool { return t != nil && n >= t.min }

// take waits for a turn for a request of n bytes from client (a client
// key): the client's turn, the server's, then the rest after the turn
// before it. It returns the function that ends the turn, which must be
// called once the request is decoded. It returns errLargeWaiting if too
// much waits already, ctx's status error (CANCELED or DEADLINE_EXCEEDED)
// if ctx ends first, and errStopping if the server stops first; no turn
// then. A nil ctx never ends.
func (t *largeTurns) take(ctx context.Context, client string, n int) (done func(), err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	c := t.enter(client, n)
	if c == nil {
		t.refused.Add(1)
		return nil, errLargeWaiting
	}
	start := t.now()
	t.waiting.Add(1)
	defer t.waiting.Add(-1)
	giveUp := func(err error) (func(), error) {
		t.leave(client, c, n)
		t.gaveUp.Add(1)
		return nil, err
	}
	select { // the client's turn
	case <-c.token:
	case <-ctx.Done():
		return giveUp(status.FromContextError(ctx.Err()).Err())
	case <-t.stop:
		return giveUp(errStopping)
	}
	select { // the server's
	case <-t.token:
	case <-ctx.Done():
		c.token <- struct{}{}
		return giveUp(status.FromContextError(ctx.Err()).Err())
	case <-t.stop:
		c.token <- struct{}{}
		return giveUp(errStopping)
	}
	c.token <- struct{}{} // the client's next may wait for the server's turn
	if d := t.restUntil.Sub(t.now()); d > 0 {
		if err := t.rest(ctx, t.stop, d); err != nil {
			t.token <- struct{}{} // the rest goes on for the next taker
			return giveUp(err)
		}
	}
	if err := ctx.Err(); err != nil { // a select picks at random among what is ready
		t.token <- struct{}{}
		return giveUp(status.FromContextError(err).Err())
	}
	t.leave(client, c, n)
	began := t.now()
	t.turns.Add(1)
	t.waited.Add(int64(began.Sub(start)))
	return func() {
		end := t.now()
		t.restUntil = end.Add(min(end.Sub(began), maxTurnRest))
		t.token <- struct{}{}
	}, nil
}

// enter counts a request of n bytes from client as waiting and returns its
// client's turns, or nil if the client, or the server, has too much
// waiting already (a client's first may always wait).
func (t *largeTurns) enter(client string, n int) *clientTurns {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.clients[client]
	if c != nil && (c.bytes+int64(n) > maxWaitingPerClient || t.bytes+int64(n) > maxWaiting) {
		return nil
	}
	if c == nil {
		c = &clientTurns{token: make(chan struct{}, 1)}
		c.token <- struct{}{}
		t.clients[client] = c
	}
	c.waiting++
	c.bytes += int64(n)
	t.bytes += int64(n)
	return c
}

// leave counts a request of n bytes from client as no longer waiting,
// forgetting the client when it has none left. Its client's token is back
// by then, so a client forgotten holds its turn for nobody.
func (t *largeTurns) leave(client string, c *clientTurns, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c.waiting--
	c.bytes -= int64(n)
	t.bytes -= int64(n)
	if c.waiting == 0 {
		delete(t.clients, client)
	}
}

// sleepCtx waits d, or until ctx is done or stop closed, and returns
// ctx's status error or errStopping then.
func sleepCtx(ctx context.Context, stop <-chan struct{}, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-stop:
		return errStopping
	}
}

var (
	largeTurnsDesc = prometheus.NewDesc("roomcast_large_request_turns_total",
		"Requests of --large-request-turn bytes or more decoded in a turn: one at a time, each followed by a rest as long as it took.", nil, nil)
	largeWaitDesc = prometheus.NewDesc("roomcast_large_request_wait_seconds_total",
		"Time requests of --large-request-turn bytes or more waited for the turns they took, the rests after the turns before them included (not the waits of requests that gave up).", nil, nil)
	largeWaitingDesc = prometheus.NewDesc("roomcast_large_requests_waiting",
		"Requests of --large-request-turn bytes or more waiting for their turns now.", nil, nil)
	largeGaveUpDesc = prometheus.NewDesc("roomcast_large_request_turns_abandoned_total",
		"Requests of --large-request-turn bytes or more whose call ended (cancelled, or past its deadline), or whose server stopped, while they waited for a turn.", nil, nil)
	largeRefusedDesc = prometheus.NewDesc("roomcast_large_requests_refused_total",
		"Requests of --large-request-turn bytes or more refused with RESOURCE_EXHAUSTED rather than wait for a turn: their client address had 16 MiB of such requests waiting already, or the server 256 MiB.", nil, nil)
)

// Describe implements prometheus.Collector.
func (t *largeTurns) Describe(ch chan<- *prometheus.Desc) {
	ch <- largeTurnsDesc
	ch <- largeWaitDesc
	ch <- largeGaveUpDesc
	ch <- largeWaitingDesc
	ch <- largeRefusedDesc
}

// Collect implements prometheus.Collector.
func (t *largeTurns) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(largeTurnsDesc, prometheus.CounterValue, float64(t.turns.Load()))
	ch <- prometheus.MustNewConstMetric(largeWaitDesc, prometheus.CounterValue, time.Duration(t.waited.Load()).Seconds())
	ch <- prometheus.MustNewConstMetric(largeGaveUpDesc, prometheus.CounterValue, float64(t.gaveUp.Load()))
	ch <- prometheus.MustNewConstMetric(largeWaitingDesc, prometheus.GaugeValue, float64(t.waiting.Load()))
	ch <- prometheus.MustNewConstMetric(largeRefusedDesc, prometheus.CounterValue, float64(t.refused.Load()))
}
