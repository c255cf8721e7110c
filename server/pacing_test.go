package server

import (
	"sync/atomic"
	"testing"
	"time"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Whatever the wake delays, no pass waits longer than the bound, counted
// from when the previous pass began; one due the bound after it, or before
// any pass, waits not at all.
func TestPacerNeverHoldsPastItsBound(t *testing.T) {
	const bound = 20 * time.Millisecond
	delays := []time.Duration{0, time.Microsecond, 100 * time.Microsecond, time.Millisecond, 50 * time.Millisecond, time.Hour}
	for _, delay := range delays {
		p := passPacer{max: int64(bound), perPass: holdFromResponses << 8}
		if d := p.holdFor(0); d > 0 {
			t.Fatalf("delay %v: first pass held %v", delay, d)
		}
		for range 64 {
			p.woke(int64(delay))
		}
		const last = int64(time.Second)
		p.begin(last)
		for since := time.Duration(0); since <= 2*bound; since += bound / 8 {
			d := p.holdFor(last + int64(since))
			if d > bound-since {
				t.Errorf("delay %v, %v after the last pass: held %v, past the bound", delay, since, d)
			}
			if since >= bound && d > 0 {
				t.Errorf("delay %v: a pass %v after the last held %v", delay, since, d)
			}
		}
	}
}

// The hold follows the average wake delay: none when wake-ups are
// prompt, holdPerDelay times the delay when they are late, up to the bound,
// and none again once they are prompt again.
func TestPacerHoldFollowsTheWakeDelay(t *testing.T) {
	const bound = 50 * time.Millisecond
	p := passPacer{max: int64(bound), perPass: holdFromResponses << 8}
	p.begin(0)
	if d := p.holdFor(0); d != 0 {
		t.Fatalf("prompt wake-ups: held %v", d)
	}
	for range 200 {
		p.woke(int64(100 * time.Microsecond))
	}
	if d, want := p.holdFor(0), holdPerDelay*100*time.Microsecond; d < want*9/10 || d > want {
		t.Errorf("wake-ups 100µs late: held %v, want about %v", d, want)
	}
	for range 200 {
		p.woke(int64(10 * time.Millisecond))
	}
	if d := p.holdFor(0); d != bound {
		t.Errorf("wake-ups 10ms late: held %v, want the bound %v", d, bound)
	}
	for range 200 {
		p.woke(0)
	}
	if d := p.holdFor(0); d != 0 {
		t.Errorf("prompt wake-ups again: held %v", d)
	}
	off := passPacer{}
	off.woke(int64(time.Second))
	off.begin(0)
	if d := off.holdFor(0); d != 0 {
		t.Errorf("holding off: held %v", d)
	}
}

// pacedServer is a server of fake streams on a clock that moves only when
// the test moves it, whose writers report each hold on holds and begin it
// once the test sends on proceed (or has ended).
type pacedServer struct {
	srv     *Server
	clock   atomic.Int64
	holds   chan time.Duration
	proceed chan struct{}
}

func newPacedServer(t *testing.T, bound time.Duration) *pacedServer {
	p := &pacedServer{holds: make(chan time.Duration, 1), proceed: make(chan struct{})}
	p.clock.Store(int64(time.Hour))
	p.srv = newTestServer(t, WithMaxWriteHold(bound), withClock(p.clock.Load), withHoldHook(func(d time.Duration) {
		select {
		case p.holds <- d:
		default:
		}
		select {
		case <-p.proceed:
		case <-t.Context().Done(): // the test ended before its cleanups: they wait for the writer
		}
	}))
	return p
}

// lateWakeUps makes c's writer, once it waits, find its wake-ups late by
// far more than enough to hold for the whole bound.
func lateWakeUps(t *testing.T, c *outConn) {
	t.Helper()
	waitFor(t, "the writer waits", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.waiting
	})
	c.mu.Lock()
	c.pacer.delay = int64(time.Hour)
	c.pacer.perPass = holdFromResponses << 8 // as if its passes served many streams
	c.mu.Unlock()
}

// nextHold waits for a writer to begin a hold and returns it.
func (p *pacedServer) nextHold(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-p.holds:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no hold within 10s")
		return 0
	}
}

// pacedFake is a pacedServer with bound and one fake stream, joined to
// room "r" and past its first message, whose writer finds its wake-ups
// late enough to hold for the whole bound (lateWakeUps).
func pacedFake(t *testing.T, bound time.Duration) (*pacedServer, *fakeStream) {
	t.Helper()
	p := newPacedServer(t, bound)
	f := openFake(t, p.srv, 1)
	f.join("r")
	first := publish(t, p.srv, "r", "1")
	f.expectOffsets(first, first)
	lateWakeUps(t, f.ss.conn)
	return p, f
}

// holdsSoFar returns the holds the server's writers made.
func (p *pacedServer) holdsSoFar() uint64 { return p.srv.WriterStats().Holds }

// A busy writer holds for the bound at most, and what is published
// meanwhile goes out in the same response as the message that woke it.
func TestBusyWriterSendsWhatGatheredInOneResponse(t *testing.T) {
	const bound = 5 * time.Millisecond
	p, f := pacedFake(t, bound)
	second := publish(t, p.srv, "r", "2")
	if d := p.nextHold(t); d != bound {
		t.Errorf("held %v on the clock of the last pass, want the bound %v", d, bound)
	}
	publish(t, p.srv, "r", "3")
	last := publish(t, p.srv, "r", "4")
	p.clock.Add(int64(bound)) // the hold lasts the bound on the server's clock
	p.proceed <- struct{}{}
	resp := f.response()
	msgs := resp.GetBatch().GetMessages()
	if len(msgs) != 3 || msgs[0].GetOffset() != second || msgs[2].GetOffset() != last {
		t.Fatalf("after the hold got %v, want offsets %d to %d in one response", resp, second, last)
	}
	if st := p.srv.WriterStats(); st.Holds != 1 || st.Held != bound {
		t.Errorf("WriterStats: %d holds, %v held, want 1 and %v", st.Holds, st.Held, bound)
	}
}

// A message that comes the bound or more after the last pass began is
// sent at once, however late the writer's wake-ups are.
func TestLoneMessageIsNotHeld(t *testing.T) {
	const bound = 50 * time.Millisecond
	p, f := pacedFake(t, bound)
	p.clock.Add(int64(bound))
	second := publish(t, p.srv, "r", "2")
	f.expectOffsets(second, second)
	if n := p.holdsSoFar(); n != 0 {
		t.Errorf("%d holds, want none", n)
	}
}

// A command's reply is not held, even on a writer that would hold its
// messages.
func TestCommandReplyIsNotHeld(t *testing.T) {
	const bound = 50 * time.Millisecond
	p, f := pacedFake(t, bound)
	if rep := f.command(&roomcastv1.SubscribeRequest{Id: "leave", Command: &roomcastv1.SubscribeRequest_Leave{Leave: &roomcastv1.LeaveCommand{Room: "r"}}}); rep.GetError() != nil {
		t.Fatalf("leave: %v", rep.GetError())
	}
	if n := p.holdsSoFar(); n != 0 {
		t.Errorf("%d holds, want none", n)
	}
}

// Passes whose responses are large hold the next not at all, however
// late wake-ups come, even after one pass of small ones; passes of small
// responses to several streams hold it again; passes serving one or two
// streams, however small their responses, do not.
func TestPacerHoldsOnlyManySmallResponses(t *testing.T) {
	p := passPacer{max: int64(50 * time.Millisecond)}
	for range 200 {
		p.woke(int64(10 * time.Millisecond))
	}
	p.begin(0)
	for range 100 {
		p.collected(8, 8*200)
	}
	if d := p.holdFor(0); d != 0 {
		t.Errorf("after responses of 200 buffers: held %v", d)
	}
	p.collected(8, 16)
	p.collected(0, 0) // a pass that sent nothing changes nothing
	if d := p.holdFor(0); d != 0 {
		t.Errorf("after one pass of small responses among large ones: held %v", d)
	}
	for range 100 {
		p.collected(8, 16)
	}
	if d := p.holdFor(0); d <= 0 {
		t.Errorf("after passes of 8 small responses: held %v", d)
	}
	for range 100 {
		p.collected(1, 2)
	}
	if d := p.holdFor(0); d != 0 {
		t.Errorf("after passes of one small response each: held %v", d)
	}
}
