package redisengine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitLimit bounds every wait of a test.
const waitLimit = 30 * time.Second

// heartbeatTTL is the presence TTL of tests in which a live node's members
// or sessions must outlive it. The heartbeat refreshes them every TTL/3, so
// a node whose goroutines stall for two thirds of the TTL loses them, as the
// engine means to: at 300 ms that is 200 ms, which a machine at a load of
// 15 under the race detector can miss.
const heartbeatTTL = 2 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, failing the test with what's text
// after waitLimit.
func waitFor(t testing.TB, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what())
		}
		time.Sleep(2 * time.Millisecond) // poll interval
	}
}

// newEngine makes an engine on servers for the test's duration.
func newEngine(t testing.TB, cfg redisengine.Config, servers ...*redistest.Server) *redisengine.Engine {
	t.Helper()
	for _, s := range servers {
		cfg.Addrs = append(cfg.Addrs, s.Addr)
	}
	e, err := redisengine.New(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// sink is a node's Sink as the tests see it: everything delivered and
// reset, per room, in order.
type sink struct {
	mu       sync.Mutex
	rooms    map[string][]event
	presence map[string][]broker.Event
}

// event is one Deliver (an entry) or one Reset (reset set, entry's Offset
// and Epoch the position).
type event struct {
	broker.Entry
	reset bool
}

func newSink() *sink {
	return &sink{rooms: make(map[string][]event), presence: make(map[string][]broker.Event)}
}

func (s *sink) Deliver(room string, e broker.Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rooms[room] = append(s.rooms[room], event{Entry: e})
}

func (s *sink) Reset(room string, p broker.Position) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rooms[room] = append(s.rooms[room], event{Entry: broker.Entry{Offset: p.Offset, Epoch: p.Epoch}, reset: true})
}

// DeliverEvent keeps presence events apart from entries.
func (s *sink) DeliverEvent(room string, ev broker.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.presence[room] = append(s.presence[room], ev)
}

func (s *sink) events(room string) []event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rooms[room])
}

// count is how many entries of room were delivered.
func (s *sink) count(room string) int { return len(s.events(room)) }

// contiguous checks that the sink got room's entries after after, in epoch,
// exactly once each and in order, up to at least upTo, and nothing else.
func (s *sink) contiguous(room string, after uint64, epoch string, upTo uint64) error {
	evs := s.events(room)
	next := after + 1
	for i, ev := range evs {
		switch {
		case ev.reset:
			return fmt.Errorf("event %d: a Reset to %d/%s", i, ev.Offset, ev.Epoch)
		case ev.Epoch != epoch:
			return fmt.Errorf("event %d: offset %d of epoch %s, want %s", i, ev.Offset, ev.Epoch, epoch)
		case ev.Offset != next:
			return fmt.Errorf("event %d: offset %d, want %d (%s)", i, ev.Offset, next, offsets(evs))
		}
		next++
	}
	if next <= upTo {
		return fmt.Errorf("got up to %d, want %d", next-1, upTo)
	}
	return nil
}

func offsets(evs []event) string {
	var b strings.Builder
	for _, ev := range evs {
		if ev.reset {
			b.WriteString("R")
		}
		fmt.Fprintf(&b, "%d ", ev.Offset)
	}
	return b.String()
}

// body is what tests publish: text, as a stand-in for an encoded Message.
func body(room string, i int) []byte { return fmt.Appendf(nil, "%s#%d", room, i) }
