package server

import (
	"sync/atomic"
	"time"
)

// WriterStats counts what a server's connection writers (writer.go) did
// since it started: how often they were woken and how many Sends they made
// for how many deliveries is what decides the cost of a delivery beyond
// the broker's.
type WriterStats struct {
	Wakeups uint64 // a writer waiting for work was woken
	Passes  uint64 // passes over a connection's ready streams
	Sends   uint64 // batches of messages sent, one SendMsg each, by the connections' shared writers
	Holds   uint64 // passes a writer held back to let messages gather (pacing.go)
	// Held is the time those holds took, in all: Held/Holds is how long a
	// held pass's messages waited for it, at most, beyond the wake-up.
	Held time.Duration
	// Detaches is how often a Send blocked its connection's writer long
	// enough for the stream to be moved off it (writer.go): its client
	// read too slowly, so that HTTP/2 flow control or the socket held
	// grpc-go's writes up.
	Detaches uint64
}

// Plus returns the counts of s and o together, as of two servers.
func (s WriterStats) Plus(o WriterStats) WriterStats {
	return WriterStats{Wakeups: s.Wakeups + o.Wakeups, Passes: s.Passes + o.Passes, Sends: s.Sends + o.Sends,
		Holds: s.Holds + o.Holds, Held: s.Held + o.Held, Detaches: s.Detaches + o.Detaches}
}

// Since returns what the writers did between s0, read earlier, and s.
func (s WriterStats) Since(s0 WriterStats) WriterStats {
	return WriterStats{Wakeups: s.Wakeups - s0.Wakeups, Passes: s.Passes - s0.Passes, Sends: s.Sends - s0.Sends,
		Holds: s.Holds - s0.Holds, Held: s.Held - s0.Held, Detaches: s.Detaches - s0.Detaches}
}

// WriterStats returns what the server's connection writers did so far. It
// is safe for concurrent use; the counts are read one at a time, so they
// may disagree by a pass in flight.
func (s *Server) WriterStats() WriterStats {
	return WriterStats{Wakeups: s.writes.wakes.Load(), Passes: s.writes.passes.Load(), Sends: s.writes.sends.Load(), Holds: s.writes.holds.Load(),
		Held: time.Duration(s.writes.held.Load()), Detaches: s.detached.Load()}
}

// writerCounts is WriterStats as the writers count it: each adds once per
// wake-up or pass, not per stream, as all of them share it.
type writerCounts struct {
	wakes  atomic.Uint64
	passes atomic.Uint64
	sends  atomic.Uint64
	holds  atomic.Uint64
	held   atomic.Int64 // ns
}
