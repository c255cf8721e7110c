package server

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// closedWithin fails the test unless other, the far end of a held
// connection, sees it closed within d.
func closedWithin(t *testing.T, other net.Conn, d time.Duration) {
	t.Helper()
	other.SetReadDeadline(time.Now().Add(d))
	if _, err := other.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("a held connection's far end read %v, want EOF: it was not closed", err)
	}
}

// The goroutine that waits on an empty ring is woken by the next refusal:
// held connections keep being reset after the ring has emptied, again and
// again.
func TestTarpitWakesOnARefusalAfterEmptying(t *testing.T) {
	p := newTarpit(&config{limits: limits{refusedHold: 20 * time.Millisecond, refusedHeldMax: 10}})
	defer p.stop()
	for range 3 {
		c, other := net.Pipe()
		p.refuse(c)
		closedWithin(t, other, 5*time.Second)
		other.Close()
	}
}

// The ring keeps its connections in order as it wraps and grows, up to
// the bound, and resets them as their holds end.
func TestTarpitRingWrapsAndGrows(t *testing.T) {
	p := newTarpit(&config{limits: limits{refusedHold: time.Hour, refusedHeldMax: 40}})
	defer p.stop()
	base := time.Now()
	var ends []net.Conn
	hold := func(i int) {
		c, other := net.Pipe()
		t.Cleanup(func() { other.Close() })
		p.mu.Lock()
		p.push(heldSock{conn: c, until: base.Add(time.Duration(i) * time.Second)})
		p.mu.Unlock()
		ends = append(ends, c)
	}
	for i := range 12 {
		hold(i)
	}
	p.mu.Lock()
	due := p.popDue(nil, base.Add(9*time.Second)) // ten, leaving the ring's head near its end
	p.mu.Unlock()
	if len(due) != 10 {
		t.Fatalf("popped %d, want 10", len(due))
	}
	for i := 12; i < 50; i++ { // wraps, grows twice, and stops at the bound
		hold(i)
	}
	p.mu.Lock()
	n, size := p.n, len(p.ring)
	due = p.popDue(nil, base.Add(time.Hour))
	p.mu.Unlock()
	if n != 40 || size != 40 {
		t.Fatalf("held %d in a ring of %d, want 40 in 40", n, size)
	}
	for i, c := range due {
		if want := ends[10+i]; c != want {
			t.Fatalf("connection %d out of order", i)
		}
	}
}

// stop ends the goroutine, which the first held connection started, and
// resets what it held; a connection refused after stop is reset at once.
func TestTarpitStopEndsItsGoroutine(t *testing.T) {
	p := newTarpit(&config{limits: limits{refusedHold: time.Hour, refusedHeldMax: 1}})
	c, other := net.Pipe()
	defer other.Close()
	p.refuse(c)
	p.stop()
	p.stop()
	select {
	case <-p.done:
	default:
		t.Fatal("stop returned before the tarpit's goroutine ended")
	}
	closedWithin(t, other, 5*time.Second)
	c2, other2 := net.Pipe()
	defer other2.Close()
	p.refuse(c2) // after stop: reset at once, not held
	closedWithin(t, other2, 5*time.Second)
	if p.held() != 0 {
		t.Errorf("held %d after stop, want 0", p.held())
	}
}
