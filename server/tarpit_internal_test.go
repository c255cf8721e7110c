package server

import (
	"net"
	"testing"
	"time"
)

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
		if p.held() < 40 {
			hold(i)
		}
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

// stop ends the goroutine, which the first held connection started.
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
	if _, err := c.Write([]byte{0}); err == nil {
		t.Error("stop left a held connection open")
	}
	if p.held() != 0 {
		t.Errorf("held %d after stop, want 0", p.held())
	}
}
