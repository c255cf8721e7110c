package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Pacing an address's unfinished requests: the budget (unfinished.go)
// bounds what unfinished requests hold, not how fast a client fills it.
// After each penalty an attacker's redials fill the 64 MiB again as fast as
// the server reads, and reading it costs a server of two cores some 80 ms
// of CPU at once, a burst in which other clients' deliveries wait (issue
// #13 (m): a bystander's p99 three to five times its baseline, the
// slowest deliveries all at the refills).
//
// So while a client address holds more than a quarter of its share, a read
// of its connections that adds to what it holds is paced: the address may
// add WithUnfinishedReadRate bytes a second, in bursts of a 32nd of that,
// and a reader that overdrew waits before it hands what it read to
// grpc-go, as long as the overdraft takes to pay back (readpace.go), so
// that the client's sends wait in TCP flow control. Reads that finish requests,
// and so free what they held, are never charged. An honest client holds
// that much only with many large publishes half-arrived at once (a grpc-go
// client sends its streams' frames in turn); it is slowed to the rate,
// which is the publish byte rate's default, and never cut by it.

// DefaultUnfinishedReadRate is WithUnfinishedReadRate's default: 32 MiB a
// second, DefaultPublishByteRate.
const DefaultUnfinishedReadRate = 32 << 20

// minPaceBurst is the least burst of the pacing: a few reads' worth.
const minPaceBurst = 64 << 10

// WithUnfinishedReadRate paces, at bytesPerSecond, the reads of a client
// address while it holds more than a quarter of its share of unfinished
// requests (WithMaxUnfinishedBytes): what its reads add to what it holds
// is held to that rate over all its connections, in bursts of a 32nd of a
// second's worth (at least 64 KiB), and a connection's reader that
// overdrew waits to read on. Its client's sends wait in TCP flow control
// meanwhile; nothing is refused or closed for it. The wait is counted in
// roomcast_unfinished_request_paced_seconds_total. It applies where
// WithMaxUnfinishedBytes does, and not when that is off. The default is
// DefaultUnfinishedReadRate (32 MiB a second); 0 turns pacing off.
func WithUnfinishedReadRate(bytesPerSecond int64) Option {
	return func(c *config) { c.unfinishedReadRate = bytesPerSecond }
}

// paceLimiter returns a new address's limiter, nil if pacing is off.
func (b *unfinishedBudget) paceLimiter() *rate.Limiter {
	if b.paceRate <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(b.paceRate), int(max(b.paceRate/32, minPaceBurst)))
}

// paceFrom is what an address may hold before its reads are paced.
func (b *unfinishedBudget) paceFrom() int64 { return b.perAddr / 4 }

// paceWait charges a's limiter for delta bytes added to what a holds,
// which is now held, and returns how long the reader waits for it (see
// readpace.go): 0 unless a holds more than paceFrom and delta adds to it.
// Called by add.
func (b *unfinishedBudget) paceWait(a *addrShare, held, delta int64) time.Duration {
	if a.pace == nil || delta <= 0 || held <= b.paceFrom() {
		return 0
	}
	return reserve(a.pace, b.clock(), int(delta))
}

// clock is the pacing's time: time.Now but in tests.
func (b *unfinishedBudget) clock() time.Time {
	if b.now != nil {
		return b.now()
	}
	return time.Now()
}

var unfinishedPacedDesc = prometheus.NewDesc("roomcast_unfinished_request_paced_seconds_total",
	"Seconds client connections' reads waited, paced at --unfinished-read-rate, because their address held more than a quarter of --max-unfinished-bytes-per-address in unfinished requests (summed over connections).", nil, nil)
