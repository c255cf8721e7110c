package server

import (
	"io"
	"log/slog"
	"net"
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
		{"another address", other, 3 * mib, 0},
		{"a finished request", a1, -mib, 0},
		{"a read larger than the burst is charged the burst", a2, 3 * mib, 4 * perMiB},
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

// A reader waiting out its pace wakes when its connection closes, and the
// wait is counted.
func TestPacedReaderWakesAtClose(t *testing.T) {
	b := &unfinishedBudget{max: 1 << 30, perAddr: 1 << 20, paceRate: 1 << 20, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c := &resetConn{Conn: &addrConn{remote: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}}, guard: &resetGuard{unfinished: b}}
	s := b.share(c)
	if s.released == nil {
		t.Fatal("a paced share has no channel to wake its reader")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.waitPaced(s, time.Hour)
	}()
	c.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the paced reader did not wake when its connection closed")
	}
	if b.paced.Load() <= 0 {
		t.Fatal("the wait was not counted")
	}
	// Without pacing a share has no channel, and nothing to close.
	b2 := &unfinishedBudget{max: 1 << 30, perAddr: 1 << 20}
	c2 := &resetConn{Conn: &addrConn{remote: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}}, guard: &resetGuard{unfinished: b2}}
	if s := b2.share(c2); s.released != nil || s.addr.pace != nil {
		t.Fatal("an unpaced budget made a limiter or a channel")
	}
	c2.Close()
}
