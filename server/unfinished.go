package server

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Unfinished requests: a publish's message may be as large as the receive
// limit (1 MiB by default), so the scanner cannot refuse a publish by what
// it announces, as it does the other methods' (messageguard.go). grpc-go
// holds what has come of a message until the message is whole, and grants
// a waiting reader the whole message past the stream's window; so a client
// that announces a 1 MiB publish on each of a thousand streams and sends
// all but the last byte of each has the server hold a gigabyte for as long
// as it likes.
//
// The scanner counts, per connection, what every unfinished message it
// follows holds (held: its frames, at frameCost), and the server sums
// them (unfinishedBudget). Past the server's budget, the client address
// holding the most gives way, until the sum is within the budget again:
// if it held more than its share (perAddr), every connection of its that
// holds something is closed and the address is penalised (penalty.go), so
// that an attacker's redials are not served; if not, only its largest
// connection is closed, without a penalty. Nothing else is refused: an
// honest client may hold a great deal while nobody else needs the room (a
// grpc-go client round-robins its streams' frames, so 64 concurrent 1 MiB
// publishes on one connection are all half-arrived at once), and only
// when the budget is short does the largest holder give way.
//
// Lock order: unfinishedBudget.mu, then a budgetShare's mu, then an
// address's pace limiter (its own lock; see unfinishedpace.go). The
// penalties and the log are called with neither mu held, and a paced
// reader waits with none held.

// Defaults of WithMaxUnfinishedBytes.
const (
	DefaultMaxUnfinishedBytes           = 64 << 20
	DefaultMaxUnfinishedBytesPerAddress = DefaultMaxUnfinishedBytes / 2
)

// WithMaxUnfinishedBytes bounds what unfinished request messages hold in
// the server (the DATA frames they came in, at what grpc-go allocates for
// them), over all its connections, at maxServer: past it, the client
// address holding the most gives way, until the sum is within maxServer
// again. If it held more than perAddress, every connection of its that
// holds an unfinished message is closed and the address is penalised
// (WithAbusePenalty, reason unfinished_requests); if not, only its largest
// connection is closed. Closures are logged at most once a second and
// counted in roomcast_unfinished_request_closes_total; the sum is
// roomcast_unfinished_request_bytes. The bound applies to plaintext and to
// the credentials of WithTransportCredentials, but not to credentials
// given with WithGRPCOptions. The defaults are DefaultMaxUnfinishedBytes (64 MiB)
// and DefaultMaxUnfinishedBytesPerAddress (32 MiB); perAddress must be at
// least a request's receive limit (WithMaxMessageBytes and its envelope)
// and maxServer at least perAddress; maxServer 0 turns the bound off.
func WithMaxUnfinishedBytes(maxServer, perAddress int64) Option {
	return func(c *config) { c.maxUnfinished, c.maxUnfinishedPerAddr = maxServer, perAddress }
}

// errUnfinished ends the reads of a connection closed by its own reader for
// holding the most of the server's unfinished requests.
var errUnfinished = errors.New("server: connection closed: the server's budget of unfinished requests ran out, and this client address held the most")

// unfinishedBudget sums the unfinished request bytes of a server's
// connections, and closes the largest holders' past max.
type unfinishedBudget struct {
	max, perAddr int64
	paceRate     int64            // bytes a second an address may add past paceFrom; 0: not paced (unfinishedpace.go)
	now          func() time.Time // the pacing's clock; nil: time.Now
	penalties    *penalties       // nil: none
	log          *slog.Logger
	total        atomic.Int64
	paced        atomic.Int64 // nanoseconds readers waited, paced
	closes       closeCounter

	mu    sync.Mutex
	addrs map[string]*addrShare // the addresses of connections holding something, by clientKey
}

// addrShare is what one client address holds.
type addrShare struct {
	key   string
	held  int64         // summed afresh by largest, under its budget's mu
	live  atomic.Int64  // kept by add and release, for the pacing
	pace  *rate.Limiter // what its reads may add past paceFrom; nil: not paced
	conns map[*budgetShare]struct{}
}

// budgetShare is what one connection holds, as the budget counts it.
type budgetShare struct {
	mu   sync.Mutex
	held int64
	gone bool // released: the connection is closed or closing
	addr *addrShare
	conn *resetConn
}

// share returns c's share, joining the budget at its first use; a closed
// connection's is gone.
func (b *unfinishedBudget) share(c *resetConn) *budgetShare {
	if c.share != nil {
		return c.share
	}
	c.joined.Store(true) // before closed is looked at: see leave
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &budgetShare{conn: c, gone: c.budgetClosed.Load()}
	c.share = s
	if s.gone {
		return s
	}
	key := clientKey(c.RemoteAddr())
	a := b.addrs[key]
	if a == nil {
		a = &addrShare{key: key, conns: make(map[*budgetShare]struct{}), pace: b.paceLimiter()}
		if b.addrs == nil {
			b.addrs = make(map[string]*addrShare)
		}
		b.addrs[key] = a
	}
	a.conns[s] = struct{}{}
	s.addr = a
	return s
}

// add counts delta more bytes held by c, and reports whether c may go on
// (false if it was the one closed to bring the sum within the budget) and
// how long its reader waits first, paced. Called by c's reader.
func (b *unfinishedBudget) add(c *resetConn, delta int64) (ok bool, wait time.Duration) {
	s := b.share(c)
	s.mu.Lock()
	if s.gone { // being closed: its reads end at once anyway
		s.mu.Unlock()
		return true, 0
	}
	s.held += delta
	total := b.total.Add(delta) // under s.mu, so that release takes it whole
	wait = b.paceWait(s.addr, s.addr.live.Add(delta), delta)
	s.mu.Unlock()
	if total <= b.max || delta <= 0 {
		return true, wait
	}
	return b.evict(c), wait
}

// evict closes the largest holders until the sum is within the budget,
// and reports whether self was spared.
func (b *unfinishedBudget) evict(self *resetConn) bool {
	type eviction struct {
		key      string
		peer     net.Addr
		held     int64
		closed   int
		penalise bool
	}
	var done []eviction
	defer func() { // logged and penalised once b.mu is released
		for _, e := range done {
			if logIt, unlogged := b.closes.logNow(); logIt {
				b.log.Warn("closed connections: the server's unfinished requests went over --max-unfinished-bytes, and their client address held the most",
					"address", e.key, "address_held", e.held, "closed", e.closed, "penalised", e.penalise, "unlogged", unlogged)
			}
			if e.penalise {
				b.penalties.penalise(e.peer, abuseUnfinished)
			}
		}
	}()
	b.mu.Lock()
	defer b.mu.Unlock()
	spared := true
	for b.total.Load() > b.max { // read again each time: others release too
		a, v := b.largest()
		if v == nil {
			break
		}
		held := a.held
		over := held > b.perAddr
		victims := []*budgetShare{v}
		if over { // past its share: every connection of its that holds something
			for s := range a.conns {
				if s != v && s.heldNow() > 0 {
					victims = append(victims, s)
				}
			}
		}
		for _, s := range victims {
			b.release(s)
			b.closes.closed.Add(1)
			if s.conn == self {
				spared = false // its reader closes it, with GOAWAY
				continue
			}
			s.conn.closeNow()
		}
		done = append(done, eviction{key: a.key, peer: v.conn.RemoteAddr(), held: held, closed: len(victims), penalise: over})
	}
	return spared
}

// heldNow is what s holds.
func (s *budgetShare) heldNow() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// largest returns the address holding the most and its connection holding
// the most, nil if none holds anything. Called under b.mu.
func (b *unfinishedBudget) largest() (*addrShare, *budgetShare) {
	var top *addrShare
	for _, a := range b.addrs {
		a.held = 0
		for s := range a.conns {
			s.mu.Lock()
			a.held += s.held
			s.mu.Unlock()
		}
		if a.held > 0 && (top == nil || a.held > top.held) {
			top = a
		}
	}
	if top == nil {
		return nil, nil
	}
	var v *budgetShare
	var most int64
	for s := range top.conns {
		s.mu.Lock()
		if s.held > most {
			v, most = s, s.held
		}
		s.mu.Unlock()
	}
	return top, v
}

// release takes s out of the budget for good. Called under b.mu.
func (b *unfinishedBudget) release(s *budgetShare) {
	s.mu.Lock()
	if s.gone {
		s.mu.Unlock()
		return
	}
	held := s.held
	s.held, s.gone = 0, true
	b.total.Add(-held)
	if a := s.addr; a != nil {
		a.live.Add(-held) // under s.mu, as add's
	}
	s.mu.Unlock()
	if a := s.addr; a != nil {
		a.held -= held
		delete(a.conns, s)
		if len(a.conns) == 0 {
			delete(b.addrs, a.key)
		}
	}
}

// leave releases c's share, if it has one, and keeps c from joining after:
// c is closing. A connection that never held anything leaves without the
// lock: share marks it joined before it looks at budgetClosed, and leave
// marks it closed before it looks at joined, so one of them sees the
// other.
func (b *unfinishedBudget) leave(c *resetConn) {
	c.budgetClosed.Store(true)
	if !c.joined.Load() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.share != nil {
		b.release(c.share)
	}
}

// settle brings the budget up to date with c.held, and reports whether c
// may go on; what its reader owes the address's pace is left in
// unfinishedWait, for pace. Called by c's reader at the end of each
// read's scan.
func (c *resetConn) settle() bool {
	b := c.guard.unfinished
	if b == nil || c.held == c.reported {
		return true
	}
	delta := c.held - c.reported
	c.reported = c.held
	ok, wait := b.add(c, delta)
	if !ok {
		c.err = errUnfinished
		return false
	}
	c.unfinishedWait = wait
	return true
}

// Close closes the connection, out of the budget first. Safe to call more
// than once, and concurrently with a read.
func (c *resetConn) Close() error {
	if b := c.guard.unfinished; b != nil {
		b.leave(c)
	}
	c.pause.close()
	return c.Conn.Close()
}

// closeNow closes the connection beneath any TLS at once: a TLS
// connection's Close would first try, for up to 5 seconds, to tell a
// client that may not read. Its reader and writer then fail, and grpc-go
// ends its streams.
func (c *resetConn) closeNow() {
	c.pause.close()
	if c.raw != nil {
		c.raw.Close()
		return
	}
	c.Conn.Close()
}

var (
	unfinishedBytesDesc = prometheus.NewDesc("roomcast_unfinished_request_bytes",
		"Bytes of request messages the server holds unfinished (their rest not yet come), over all connections; bounded by --max-unfinished-bytes.", nil, nil)
	unfinishedClosesDesc = prometheus.NewDesc("roomcast_unfinished_request_closes_total",
		"Client connections closed because the server's unfinished request bytes went over --max-unfinished-bytes and their address held the most: all of its connections holding any if it held more than --max-unfinished-bytes-per-address, else its largest.", nil, nil)
)

func (b *unfinishedBudget) describe(ch chan<- *prometheus.Desc) {
	ch <- unfinishedBytesDesc
	ch <- unfinishedClosesDesc
	ch <- unfinishedPacedDesc
}

func (b *unfinishedBudget) collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(unfinishedBytesDesc, prometheus.GaugeValue, float64(b.total.Load()))
	ch <- prometheus.MustNewConstMetric(unfinishedClosesDesc, prometheus.CounterValue, float64(b.closes.closed.Load()))
	ch <- prometheus.MustNewConstMetric(unfinishedPacedDesc, prometheus.CounterValue, time.Duration(b.paced.Load()).Seconds())
}
