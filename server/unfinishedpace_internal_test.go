package server

import (
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"
)

// An address's reads are paced only while it holds more than a quarter of
// its share, and only for what they add: within the burst they wait
// nothing, past it as long as the overdraft takes at the rate, which its
// connections share; another address has a bucket of its own, and what
// finishes requests is never charged.
func TestUnfinishedPacing(t *testing.T) {
	const mib = 1 << 20
	t0 := time.Unix(1e9, 0)
	// A share of 4 MiB: paced past 1 MiB, at 64 MiB a second, in bursts of 2 MiB.
	b := &unfinishedBudget{max: 64 * mib, perAddr: 4 * mib, paceRate: 64 * mib, now: func() time.Time { return t0 },
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	g := &resetGuard{unfinished: b}
	conn := func(ip string) *resetConn {
		return &resetConn{Conn: &addrConn{remote: &net.TCPAddr{IP: net.ParseIP(ip), Port: 1}}, guard: g}
	}
	perMiB := time.Second / 64
	a1, a2, other := conn("10.0.0.1"), conn("10.0.0.1"), conn("10.0.0.2")
	for _, step := range []struct {
		name  string
		c     *resetConn
		delta int64
		want  time.Duration
	}{
		{"within a quarter of the share", a1, mib, 0},
		{"past it, within the burst", a1, mib, 0},
		{"past the burst", a1, 2 * mib, perMiB},
		{"the address's other connection", a2, mib, 2 * perMiB},
		{"another address", other, 3 * mib, perMiB}, // 3 MiB past 1 MiB, against its own burst of 2
		{"a finished request", a1, -mib, 0},
		{"a read larger than the burst is charged whole", a2, 3 * mib, 5 * perMiB},
	} {
		ok, wait := b.add(step.c, step.delta)
		if !ok || wait != step.want {
			t.Fatalf("%s: add(%d) = %v, %v; want true, %v", step.name, step.delta, ok, wait, step.want)
		}
	}
	// Back within a quarter of its share, the address is not paced, though
	// its bucket is overdrawn.
	b.add(a1, -3*mib)
	b.add(a2, -4*mib)
	if _, wait := b.add(a1, mib/2); wait != 0 {
		t.Fatalf("an address within a quarter of its share waits %v", wait)
	}
	if got := b.addrs["10.0.0.1"].live.Load(); got != mib/2 {
		t.Fatalf("the address holds %d, want %d", got, mib/2)
	}
	// Closed connections take what they held out of the address's count.
	a1.Close()
	if got := b.addrs["10.0.0.1"].live.Load(); got != 0 {
		t.Fatalf("the address holds %d once its holder closed, want 0", got)
	}
}

// A reader waiting out its pace wakes when its connection closes, by
// Close or by closeNow, and waits no more after.
func TestPacedReaderWakesAtClose(t *testing.T) {
	for _, closeIt := range []struct {
		name  string
		close func(c *resetConn)
	}{
		{"Close", func(c *resetConn) { c.Close() }},
		{"closeNow", func(c *resetConn) { c.closeNow() }},
	} {
		t.Run(closeIt.name, func(t *testing.T) {
			c := &resetConn{Conn: &addrConn{remote: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}}, guard: &resetGuard{}}
			if waited := c.pause.wait(time.Millisecond); waited < time.Millisecond { // the timer, made and spent
				t.Fatalf("a wait of 1ms took %v", waited)
			}
			done := make(chan time.Duration)
			go func() { done <- c.pause.wait(time.Hour) }()
			for waiting := false; !waiting; { // until the reader waits: its timer runs again
				c.pause.mu.Lock()
				waiting = c.pause.timer != nil && c.pause.timer.Reset(time.Hour)
				c.pause.mu.Unlock()
				runtime.Gosched()
			}
			closeIt.close(c)
			closeIt.close(c) // again: nothing more to do
			select {
			case waited := <-done:
				if waited >= time.Hour {
					t.Fatalf("waited %v", waited)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the paced reader did not wake when its connection closed")
			}
			if waited := c.pause.wait(time.Hour); waited != 0 {
				t.Fatalf("a closed connection's reader waited %v", waited)
			}
		})
	}
}
