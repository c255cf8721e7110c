package server

import "testing"

// WriterStats counts one Send per stream served, a pass per round of the
// writer, and a wake-up when a waiting writer is given work.
func TestWriterStatsCount(t *testing.T) {
	srv := newTestServer(t)
	a, b := openFake(t, srv, 1), openFake(t, srv, 1)
	a.join("r")
	b.join("r")
	parked := func() bool { return a.sched() == schedParked && b.sched() == schedParked }
	waitFor(t, "parked", parked)
	c := a.ss.conn
	for i, text := range []string{"1", "2"} {
		if i > 0 { // the writer sent a batch, so it waits for more rather than exiting
			waitFor(t, "waiting", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.waiting })
		}
		before := srv.WriterStats()
		off := publish(t, srv, "r", text)
		a.expectOffsets(off, off)
		b.expectOffsets(off, off)
		waitFor(t, "parked", parked) // after the pass that sent them, and counted its Sends
		d := srv.WriterStats()
		if sends := d.Sends - before.Sends; sends != 2 {
			t.Errorf("publish %s: %d Sends, want one per stream", text, sends)
		}
		if d.Passes == before.Passes {
			t.Errorf("publish %s: no pass counted", text)
		}
		if i > 0 && d.Wakeups == before.Wakeups {
			t.Errorf("publish %s: the waiting writer's wake-up was not counted", text)
		}
	}
}
