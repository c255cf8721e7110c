package server

import (
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Paced reads: a watched connection's reader (resets.go) may wait, after
// it has scanned what it read and before it hands it to grpc-go, so that
// the client's sends wait in TCP flow control rather than in the server.
// It waits for the longer of two paces, both per client address
// (clientKey), shared by its connections:
//
//   - the request frame rate. grpc-go spends about the same on a frame
//     whatever it holds, and a stream's receive window (256 KiB) lets a
//     client send ten thousand commands of a few bytes on each of its
//     streams before the server reads one: a flood of them from 50 streams
//     (issue #13 (e)) had the server take in half a million frames in
//     bursts that kept both cores of a 2-core server busy for tens of
//     milliseconds, and another client's deliveries waited behind them
//     (p99 three to six times its baseline). So the frames that carry no
//     publish are counted: DATA frames on calls other than the publishes
//     (a Subscribe stream's commands, History, Presence, Watch, health); a
//     publish's DATA frame in which no message begins (a piece of a large
//     one, which comes in 16 KiB frames, or nothing but padding); and the
//     frames a gRPC client sends next to none of (SETTINGS, PRIORITY,
//     unknown types). A review flooded the uncounted ones of an earlier
//     version (padded empty DATA on a publish, PRIORITY, unknown types,
//     without a credential) and cost the server 8 s of CPU in 5; and
//     WINDOW_UPDATE and PING past what the server's writes allow
//     (controlframes.go). Not counted: a publish's frames that begin
//     messages (a small publish is one), which the publish rates govern,
//     RST_STREAM (rapid reset has its limit), and the WINDOW_UPDATE and
//     PING frames that a client sends as it reads. The rate is four times
//     a credential's command rate.
//   - an address's unfinished requests past a quarter of its share
//     (unfinishedpace.go).
//
// The pace holds the whole connection: every call on it waits with the
// frames, and all of an address's connections share its buckets. So a
// gateway or a NAT that brings many clients on one address shares one
// pace, and one of them flooding slows the others: raise the rates there.
//
// A wait ends early when the server closes the connection (its next read
// fails), not when the client does (its next read finds that). A wait is
// at most maxReadWait, whatever the debt: the rest is owed by the next
// reads, each of which waits too, so a connection whose address is deep
// in debt is read at most once a maxReadWait, under grpc-go's keepalive
// timeout.

// maxReadWait bounds one paced wait.
const maxReadWait = 5 * time.Second

// DefaultRequestFrameRate is WithRequestFrameRate's default: four times
// DefaultCredentialCommandRate.
const DefaultRequestFrameRate = 4 * DefaultCredentialCommandRate

// WithRequestFrameRate paces each client address's frames that carry no
// publish: DATA frames on calls other than Publish and PublishStream
// (Subscribe commands, History, Presence, Watch, health checks), a
// publish's DATA frames in which no message begins, SETTINGS, PRIORITY,
// CONTINUATION, GOAWAY and unknown frames, and WINDOW_UPDATE and PING
// frames past what the server's writes allow (two or three for each DATA
// frame, and 32 at the start) or that open a window by less than 1 KiB;
// at perSecond over the address's connections, in
// bursts of as many. Past it a connection's reader waits before grpc-go
// sees what it read, and its client's sends wait in TCP flow control;
// nothing is refused. A gRPC client sends a small request in one frame.
// The wait is counted in roomcast_request_frames_paced_seconds_total. Like
// the other scanner limits it applies to plaintext and to the credentials
// of WithTransportCredentials; and to ServeWeb's HTTP/2 connections, whose
// messages it does not follow, so that of their DATA frames it counts
// those that carry little (webguard.go). The default is DefaultRequestFrameRate
// (8000); 0 turns it off.
func WithRequestFrameRate(perSecond int) Option {
	return func(c *config) { c.requestFrameRate = perSecond }
}

// pace waits what this read owes before it goes to grpc-go: its request
// frames, charged to its address's bucket, (settle left it in
// unfinishedWait) its address's unfinished requests, and a web
// connection's hold after a refusal (holdReads); at most maxReadWait.
// It reports true: a closed connection's next read fails on its own.
func (c *resetConn) pace() bool {
	var frameWait time.Duration
	if c.frames > 0 && c.guard.frames != nil {
		if a := c.pause.bucket(c.guard.frames, c.RemoteAddr); a != nil {
			frameWait = reserve(a.lim, time.Now(), c.frames)
		}
	}
	c.frames = 0
	unfinishedWait := c.unfinishedWait
	c.unfinishedWait = 0
	var heldWait time.Duration
	if until := c.readsHeld.Load(); until != 0 {
		heldWait = time.Until(time.Unix(0, until))
	}
	d := min(max(frameWait, unfinishedWait, heldWait), maxReadWait)
	if d <= 0 {
		return true
	}
	waited := c.pause.wait(d)
	if frameWait > 0 {
		c.guard.framesPaced.Add(int64(min(waited, frameWait)))
	}
	if unfinishedWait > 0 && c.guard.unfinished != nil {
		c.guard.unfinished.paced.Add(int64(min(waited, unfinishedWait)))
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

// frameBuckets hold the request frame rate, a bucket for each client
// address (clientKey), shared by its connections and dropped with its last.
// It is safe for concurrent use.
type frameBuckets struct {
	rate   int
	mu     sync.Mutex
	byAddr map[string]*addrFrames
}

// addrFrames is one address's bucket.
type addrFrames struct {
	key   string
	lim   *rate.Limiter
	conns int // the connections that joined it and have not left
}

// newFrameBuckets returns the buckets of perSecond, nil if it is 0.
func newFrameBuckets(perSecond int) *frameBuckets {
	if perSecond <= 0 {
		return nil
	}
	return &frameBuckets{rate: perSecond, byAddr: make(map[string]*addrFrames)}
}

func (f *frameBuckets) join(key string) *addrFrames {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.byAddr[key]
	if a == nil {
		a = &addrFrames{key: key, lim: rate.NewLimiter(rate.Limit(f.rate), f.rate)}
		f.byAddr[key] = a
	}
	a.conns++
	return a
}

func (f *frameBuckets) leave(a *addrFrames) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a.conns--; a.conns == 0 {
		delete(f.byAddr, a.key)
	}
}

// readPause is where a connection's reader waits when it is paced, until
// the connection closes. wait is called only by the reader; close by
// whoever closes the connection, any number of times.
type readPause struct {
	mu      sync.Mutex
	closed  bool
	done    chan struct{} // made by the first wait; closed by close
	timer   *time.Timer   // the reader's
	buckets *frameBuckets // where frames joined, if it did
	frames  *addrFrames   // the address's bucket, joined at the first frame; left by close
}

// bucket returns the connection's address's frame bucket, joining it at
// the first call; nil once the connection is closed. Called by the reader.
func (p *readPause) bucket(f *frameBuckets, addr func() net.Addr) *addrFrames {
	if p.frames != nil {
		return p.frames // set by this reader; close leaves it set
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.buckets, p.frames = f, f.join(clientKey(addr()))
	return p.frames
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

// close ends the reader's wait, and any after, and leaves the address's
// frame bucket. Lock order: p.mu, then frameBuckets.mu.
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
	if p.frames != nil {
		p.buckets.leave(p.frames)
	}
}

var framesPacedDesc = prometheus.NewDesc("roomcast_request_frames_paced_seconds_total",
	"Seconds client connections' reads waited, paced at --request-frame-rate, for their address's frames that carry no publish (summed over connections).", nil, nil)
