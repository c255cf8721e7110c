package server

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Paced reads: a watched connection's reader (resets.go) may wait, after
// it has scanned what it read and before it hands it to grpc-go, so that
// the client's sends wait in TCP flow control rather than in the server.
// It waits for the longer of two paces:
//
//   - the request frame rate, per connection: DATA frames on calls other
//     than the publishes (a Subscribe stream's commands, History,
//     Presence, Watch, health), and empty DATA frames on any call. grpc-go
//     spends about the same on a frame whatever it holds, and a stream's
//     receive window (256 KiB) lets a client send ten thousand commands of
//     a few bytes on each of its streams before the server reads one: a
//     flood of them from 50 streams (issue #13 (e)) had the server take in
//     half a million frames in bursts that kept both cores of a 2-core
//     server busy for tens of milliseconds, and another client's deliveries
//     waited behind them (p99 three to six times its baseline). The rate
//     is twice a credential's command rate: a connection of one
//     credential's streams has its commands past that refused anyway.
//   - an address's unfinished requests past a quarter of its share
//     (unfinishedpace.go).
//
// A wait ends early when the server closes the connection (its next read
// fails), not when the client does (its next read finds that). A wait is
// at most maxReadWait, whatever the debt: the rest is owed by the next
// reads, each of which waits too, so a paced connection is read at most
// once a maxReadWait, and its PINGs are answered within that (grpc-go's
// keepalive allows far longer).

// maxReadWait bounds one paced wait.
const maxReadWait = time.Second

// DefaultRequestFrameRate is WithRequestFrameRate's default: twice
// DefaultCredentialCommandRate.
const DefaultRequestFrameRate = 2 * DefaultCredentialCommandRate

// WithRequestFrameRate paces each client connection's DATA frames on calls
// other than Publish and PublishStream (Subscribe commands, History,
// Presence, Watch, health checks), and its empty DATA frames on any call,
// at perSecond, in bursts of as many: past it the connection's reader
// waits before it reads on, and the client's sends wait in TCP flow
// control; nothing is refused. A gRPC client sends a small request in one
// frame. The wait is counted in
// roomcast_request_frames_paced_seconds_total. Like the other scanner
// limits it applies to plaintext and to the credentials of
// WithTransportCredentials, and needs WithMaxHeaderBytes (which names each
// stream's method). The default is DefaultRequestFrameRate (4000); 0 turns
// it off.
func WithRequestFrameRate(perSecond int) Option {
	return func(c *config) { c.requestFrameRate = perSecond }
}

// countFrame counts a DATA frame of n bytes on a stream whose messages are
// limited to limit, if it is one that the request frame rate paces.
func (c *resetConn) countFrame(limit uint32, n int) {
	if limit != unlimited || n == 0 {
		c.frames++
	}
}

// pace waits what the reads so far owe: the request frames counted since
// the last read, at the connection's rate, and the address's unfinished
// requests (settle left that in unfinishedWait). It reports true: a
// closed connection's next read fails on its own.
func (c *resetConn) pace() bool {
	g := c.guard
	var frameWait time.Duration
	if c.frames > 0 && g.frameRate > 0 {
		if c.framePace == nil {
			c.framePace = rate.NewLimiter(rate.Limit(g.frameRate), g.frameRate)
		}
		frameWait = reserve(c.framePace, time.Now(), c.frames)
	}
	c.frames = 0
	unfinishedWait := c.unfinishedWait
	c.unfinishedWait = 0
	d := min(max(frameWait, unfinishedWait), maxReadWait)
	if d <= 0 {
		return true
	}
	waited := c.pause.wait(d)
	if frameWait > 0 {
		g.framesPaced.Add(int64(min(waited, frameWait)))
	}
	if unfinishedWait > 0 && g.unfinished != nil {
		g.unfinished.paced.Add(int64(min(waited, unfinishedWait)))
	}
	return true
}

// reserve takes n tokens from l at now, a burst at a time, and returns how
// long after now the last of them is due.
func reserve(l *rate.Limiter, now time.Time, n int) time.Duration {
	var d time.Duration
	for burst := l.Burst(); n > 0; n -= burst {
		d = l.ReserveN(now, min(n, burst)).DelayFrom(now)
	}
	return d
}

// readPause is where a connection's reader waits when it is paced, until
// the connection closes. wait is called only by the reader; close by
// whoever closes the connection, any number of times.
type readPause struct {
	mu     sync.Mutex
	closed bool
	done   chan struct{} // made by the first wait; closed by close
	timer  *time.Timer   // the reader's
}

// wait waits d, or until the connection closes, and returns how long it
// waited.
func (p *readPause) wait(d time.Duration) time.Duration {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0
	}
	if p.done == nil {
		p.done = make(chan struct{})
	}
	done := p.done
	p.mu.Unlock()
	start := time.Now()
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	select {
	case <-p.timer.C:
	case <-done:
		p.timer.Stop()
	}
	return time.Since(start)
}

// close ends the reader's wait, and any after.
func (p *readPause) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	if p.done != nil {
		close(p.done)
	}
}

var framesPacedDesc = prometheus.NewDesc("roomcast_request_frames_paced_seconds_total",
	"Seconds client connections' reads waited, paced at --request-frame-rate, for their DATA frames on calls other than the publishes and their empty DATA frames (summed over connections).", nil, nil)
