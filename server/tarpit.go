package server

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A connection refused past its address's cap (addrcap.go) used to be
// reset as soon as it was accepted. That frees the client's port and its
// dialling loop at once: an attacker that redials every refusal (issue #13
// (g), redialled) made the server accept and reset over 100,000
// connections a second, most of its CPU in those two system calls. So a
// refused connection is held, accepted and unread, for a moment (a
// tarpit), then reset: a client that keeps a connection until the server
// answers or closes it may redial only as fast as its open connections
// allow, a few thousand a second rather than a hundred thousand. An
// honest client past the cap (one of many behind a NAT) sees a server that
// does not answer for the hold, then the reset it would have had at once,
// and retries as it would have; it never waits for its own connect
// timeout (grpc-go's is 20 s).
//
// A held connection costs a file descriptor and its socket's kernel
// memory, no goroutine and no buffer of the server's: one goroutine owns
// them all, and as the hold is the same for each, their deadlines come in
// the order they were held, so a FIFO ring and one timer do.

// DefaultRefusedHold is the default hold of WithRefusedHold. An honest
// client refused for its address's cap (one of more than 100 behind one
// address awaiting authentication at once) waits that much longer before
// its retry, as long as a lost SYN's first retransmission, and far within
// grpc-go's 20 s connect timeout. An attacker that redials at once may
// redial only as fast as its held connections end: under the harness's
// redialler (docs/attacks.md), 3 s rather than 1 s halved the server's
// CPU (0.8 s against 1.5 and 1.6 s in two alternated pairs).
const DefaultRefusedHold = 3 * time.Second

// maxDefaultRefusedHeld bounds the default of how many connections are
// held at once: the server's default WithMaxConnections again, so that the
// tarpit never keeps more sockets than the server serves.
const maxDefaultRefusedHeld = DefaultMaxConnections

// fallbackRefusedHeld is the default of how many connections are held at
// once where the open-file limit cannot be read.
const fallbackRefusedHeld = 1024

// tarpitSlack is how early a held connection may be closed, so that the
// owner wakes at most about once per tarpitSlack however many it holds.
const tarpitSlack = 10 * time.Millisecond

// WithRefusedHold makes the server hold each connection it refuses for its
// address's connections awaiting authentication (WithMaxPendingPerAddress)
// accepted and unread for d, then reset it, rather than reset it as soon
// as it is accepted: a client that redials each refusal at once then
// redials only as fast as its held connections end. At most most are held
// at once, over the whole server; past that a refused connection is reset
// at once. Held connections are not served, never count as awaiting
// authentication, and are reset at once when the server stops; they are
// counted in roomcast_connections_address_refused_total as before and,
// while held, in the gauge roomcast_connections_refused_held. The default
// is DefaultRefusedHold (3 s); d 0 resets at once. most 0 (the default) is
// a quarter of the process's open-file limit, at most 10,000 (the default
// WithMaxConnections), or 1024 where the limit cannot be read.
func WithRefusedHold(d time.Duration, most int) Option {
	return func(c *config) { c.refusedHold, c.refusedHeldMax = d, most }
}

// validateRefusedHold checks WithRefusedHold's settings.
func (l *limits) validateRefusedHold() error {
	switch {
	case l.refusedHold < 0:
		return fmt.Errorf("server: refused connections' hold must not be negative, got %v", l.refusedHold)
	case l.refusedHeldMax < 0:
		return fmt.Errorf("server: most refused connections held must not be negative, got %d", l.refusedHeldMax)
	}
	return nil
}

// defaultRefusedHeld is WithRefusedHold's default bound: a quarter of the
// open-file limit leaves the rest to the connections served (Go raises the
// soft limit to the hard one as it starts).
func defaultRefusedHeld() int {
	n, ok := openFileLimit()
	if !ok {
		return fallbackRefusedHeld
	}
	return int(min(n/4, maxDefaultRefusedHeld))
}

// heldSock is a refused connection held until until.
type heldSock struct {
	conn  net.Conn
	until time.Time
}

// tarpit holds refused connections unread until their hold ends. A nil
// *tarpit resets them at once. It is safe for concurrent use: the accept
// loops hold connections, its one goroutine (started with the first)
// closes them, and stop ends it.
type tarpit struct {
	hold time.Duration
	max  int
	wake chan struct{} // the ring was empty; buffered, so no wake is lost
	quit chan struct{} // closed by stop
	done chan struct{} // closed as the goroutine ends

	mu      sync.Mutex
	ring    []heldSock // ring[head], ring[head+1], … n of them, oldest first
	head, n int
	started bool
	stopped bool
}

// newTarpit returns the tarpit of cfg, nil if refused connections are reset
// at once.
func newTarpit(cfg *config) *tarpit {
	most := cfg.refusedHeldMax
	if most == 0 {
		most = defaultRefusedHeld()
	}
	if cfg.refusedHold <= 0 || most <= 0 {
		return nil
	}
	return &tarpit{
		hold: cfg.refusedHold,
		max:  most,
		wake: make(chan struct{}, 1),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
}

// refuse holds c until the hold ends, or resets it at once past the bound
// or once stopped.
func (p *tarpit) refuse(c net.Conn) {
	if p == nil {
		closeNow(c)
		return
	}
	p.mu.Lock()
	if p.stopped || p.n >= p.max {
		p.mu.Unlock()
		closeNow(c)
		return
	}
	p.push(heldSock{conn: c, until: time.Now().Add(p.hold)})
	first := p.n == 1
	if !p.started {
		p.started = true
		go p.run()
	}
	p.mu.Unlock()
	if first {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// run resets the held connections as their holds end, until stop.
func (p *tarpit) run() {
	defer close(p.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due []net.Conn
	for {
		p.mu.Lock()
		due = p.popDue(due[:0], time.Now().Add(tarpitSlack))
		next, ok := p.front()
		p.mu.Unlock()
		for i, c := range due {
			if i > 0 && i%yieldEvery == 0 {
				runtime.Gosched() // a flood's resets come in bursts: see Accept
			}
			closeNow(c)
			due[i] = nil
		}
		if !ok {
			select {
			case <-p.wake:
				continue
			case <-p.quit:
				return
			}
		}
		timer.Reset(time.Until(next))
		select {
		case <-timer.C:
		case <-p.quit:
			return
		}
	}
}

// push appends h to the ring, growing it if full. Caller holds p.mu and
// has checked the bound.
func (p *tarpit) push(h heldSock) {
	if p.n == len(p.ring) {
		grown := make([]heldSock, min(max(16, 2*len(p.ring)), p.max))
		for i := range p.n {
			grown[i] = p.ring[(p.head+i)%len(p.ring)]
		}
		p.ring, p.head = grown, 0
	}
	p.ring[(p.head+p.n)%len(p.ring)] = h
	p.n++
}

// popDue appends to due, and takes out of the ring, the connections whose
// hold ends by then. Caller holds p.mu.
func (p *tarpit) popDue(due []net.Conn, by time.Time) []net.Conn {
	for p.n > 0 && !p.ring[p.head].until.After(by) {
		due = append(due, p.ring[p.head].conn)
		p.ring[p.head] = heldSock{}
		p.head = (p.head + 1) % len(p.ring)
		p.n--
	}
	if p.n == 0 && len(p.ring) > 1024 { // a flood's ring is not kept for good
		p.ring, p.head = nil, 0
	}
	return due
}

// front returns when the oldest held connection's hold ends, false if
// none is held. Caller holds p.mu.
func (p *tarpit) front() (time.Time, bool) {
	if p.n == 0 {
		return time.Time{}, false
	}
	return p.ring[p.head].until, true
}

// held returns how many connections are held.
func (p *tarpit) held() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// stop resets every held connection at once and ends the goroutine; a
// connection refused later is reset at once. It may be called again.
func (p *tarpit) stop() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.stopped = true
	started := p.started
	held := p.popDue(nil, time.Now().Add(p.hold)) // every one: none ends later
	p.mu.Unlock()
	for _, c := range held {
		closeNow(c)
	}
	close(p.quit)
	if started {
		<-p.done
	}
}

var refusedHeldDesc = prometheus.NewDesc("roomcast_connections_refused_held",
	"Connections refused past --max-pending-per-address and held open and unread for --refused-hold before they are reset.", nil, nil)
