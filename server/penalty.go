package server

import (
	"container/list"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Closing an abusive connection (a header list over the limit, rapid reset,
// too many refused calls) costs its client nothing: it dials again at once,
// and every new connection costs the server an accept and grpc-go's
// transport set-up (three goroutines, buffers, settings) before the abuse
// is seen again, thousands of times a second (issue #13 (a), (h)). So the
// server remembers the client's address (clientKey: an IPv4 address, or an
// IPv6 /64) for a while, and does not hand that address's new connections
// to grpc-go: it holds a few of them accepted and unread until the penalty
// ends (a tarpit, which stalls a client that waits for the server's
// SETTINGS, at the cost of a socket each), and closes the rest as soon as
// they are accepted. Connections that were open before stay open: a
// well-behaved client behind the same address (a NAT) keeps what it has.
//
// A penalty lasts firstPenalty; an address that abuses again within its
// penalty's length after it ended, or within minRepeatWindow if that is
// longer, gets twice as long, up to the most configured
// (WithAbusePenalty); one that stays quiet that long starts over. The
// floor is for abuse that takes a while to repeat: an attacker's redials
// refill the budget of unfinished requests only at its pace
// (unfinishedpace.go), about 1.7 s at the defaults, and with a window of
// the first penalty's second alone its penalty never doubled (a review:
// ten 1 s penalties in 30 s, holding 23 MiB of the budget on average,
// against five doubling ones and 1.4 MiB unpaced).

// DefaultAbusePenalty is the longest penalty of WithAbusePenalty.
const DefaultAbusePenalty = time.Minute

// Bounds of the penalties: the first penalty's length, the addresses
// remembered, and the connections held unread per address and in total.
// A held connection costs a socket and what its client wrote into it
// before the kernel's receive window closed (tens of KB of kernel memory).
const (
	firstPenalty      = time.Second
	minRepeatWindow   = 10 * time.Second
	maxPenalisedAddrs = 4096
	maxHeldPerAddr    = 8
	maxHeld           = 128
)

// WithAbusePenalty makes the server remember, for up to d, the address of a
// client whose connection it closed for abuse (a header list over
// WithMaxHeaderBytes, resets past WithStreamResetRate, refused calls past
// WithMaxRefusedCalls, a request announced far over its method's limit:
// see messageguard.go): new connections from that address (an IPv6 one by
// its /64) are then held unread or closed at once, never served, until the
// penalty ends. A penalty lasts a second at first and doubles, up to d,
// while the address offends again within its length (at least 10 s) after
// each one ends. Connections the address already had are
// not affected. Every penalty is logged (at most once a second) and counted
// in roomcast_abuse_penalties_total by reason, the connections it stopped
// in roomcast_penalised_connections_total. Clients behind one NAT share an
// address: their new connections wait out an abuser's penalty too. The
// default is DefaultAbusePenalty (a minute); 0 turns penalties off.
func WithAbusePenalty(d time.Duration) Option { return func(c *config) { c.abusePenalty = d } }

// abuse is why a connection was closed, a label of the metrics.
type abuse int

const (
	abuseHeaders    abuse = iota // a header list over the limit, or a malformed block
	abuseResets                  // rapid reset
	abuseRefused                 // calls refused past --max-refused-calls
	abuseMessages                // a message announced over its method's limit (messageguard.go)
	abuseUnfinished              // the most unfinished requests, past the server's budget and the address's share (unfinished.go)
	numAbuses
)

var abuseLabels = [numAbuses]string{"header_list", "rapid_reset", "refused_calls", "message_size", "unfinished_requests"}

// penalties are the addresses penalised for abuse. A nil *penalties
// penalises nothing. It is safe for concurrent use.
type penalties struct {
	longest time.Duration
	now     func() time.Time
	log     *slog.Logger
	warn    rate.Sometimes // the log line, at most once a second

	// Bounds, constants but for tests.
	maxAddrs, maxHeldPerAddr, maxHeld int

	latest atomic.Int64 // the latest end of a penalty, in Unix ns: past it, admit does no lookup

	given   [numAbuses]atomic.Uint64 // penalties begun, by reason
	heldN   atomic.Uint64            // connections held unread
	closedN atomic.Uint64            // connections closed at once

	mu      sync.Mutex
	byKey   map[string]*penalty
	order   list.List // of *penalty, least recently penalised first
	held    map[*heldConn]struct{}
	stopped bool
}

// penalty is one address's.
type penalty struct {
	key    string
	until  time.Time     // new connections are not served before
	length time.Duration // of the last penalty
	held   int           // connections held unread
	elem   *list.Element // in penalties.order
}

// heldConn is a connection held unread until its address's penalty ends.
type heldConn struct {
	conn  net.Conn
	p     *penalty
	timer *time.Timer
}

// newPenalties returns the penalties of cfg, nil if they are off.
func newPenalties(cfg *config) *penalties {
	if cfg.abusePenalty <= 0 {
		return nil
	}
	p := &penalties{
		longest:        cfg.abusePenalty,
		now:            time.Now,
		log:            cfg.log,
		warn:           rate.Sometimes{First: 1, Interval: time.Second},
		maxAddrs:       maxPenalisedAddrs,
		maxHeldPerAddr: maxHeldPerAddr,
		maxHeld:        maxHeld,
		byKey:          make(map[string]*penalty),
		held:           make(map[*heldConn]struct{}),
	}
	if cfg.penaltyClock != nil {
		p.now = cfg.penaltyClock
	}
	return p
}

// penalise penalises addr, whose connection was closed for why. A
// penalty under way is left as it is: the address's other connections
// being closed for the same abuse are not new offences.
func (p *penalties) penalise(addr net.Addr, why abuse) {
	if p == nil || addr == nil {
		return
	}
	key := clientKey(addr)
	now := p.now()
	p.mu.Lock()
	e := p.byKey[key]
	if e != nil && now.Before(e.until) {
		p.mu.Unlock()
		return
	}
	length := firstPenalty
	if e != nil && now.Sub(e.until) < e.repeatWindow() { // again, soon after the last
		length = 2 * e.length
	}
	length = min(length, p.longest)
	if e == nil {
		e = &penalty{key: key}
		p.forgetOld(now)
		e.elem = p.order.PushBack(e)
		p.byKey[key] = e
	} else {
		p.order.MoveToBack(e.elem)
	}
	e.until, e.length = now.Add(length), length
	if end := e.until.UnixNano(); end > p.latest.Load() { // under mu: no other writer
		p.latest.Store(end)
	}
	p.mu.Unlock()

	n := p.given[why].Add(1)
	p.warn.Do(func() {
		p.log.Warn("penalised a client address for abuse: its new connections are not served until the penalty ends (--abuse-penalty)",
			"address", key, "reason", abuseLabels[why], "penalty", length, "penalties_so_far", n)
	})
}

// repeatWindow is how long after e ends an offence doubles it.
func (e *penalty) repeatWindow() time.Duration { return max(e.length, minRepeatWindow) }

// forgetOld drops the addresses whose penalty and the time after it in
// which an offence doubles it are over, then the least recently penalised
// while the table is full. Caller holds p.mu.
func (p *penalties) forgetOld(now time.Time) {
	for f := p.order.Front(); f != nil; f = p.order.Front() {
		e := f.Value.(*penalty)
		if len(p.byKey) < p.maxAddrs && now.Before(e.until.Add(e.repeatWindow())) {
			return
		}
		p.order.Remove(f)
		delete(p.byKey, e.key)
	}
}

// admit reports whether c may be served; if not, it has held c or closed
// it.
func (p *penalties) admit(c net.Conn) bool {
	if p == nil || p.latest.Load() == 0 {
		return true
	}
	now := p.now()
	if now.UnixNano() >= p.latest.Load() { // every penalty is over
		return true
	}
	key := clientKey(c.RemoteAddr())
	p.mu.Lock()
	e := p.byKey[key]
	if e == nil || !now.Before(e.until) {
		p.mu.Unlock()
		return true
	}
	if p.stopped || e.held >= p.maxHeldPerAddr || len(p.held) >= p.maxHeld {
		p.mu.Unlock()
		p.closedN.Add(1)
		closeNow(c)
		return false
	}
	h := &heldConn{conn: c, p: e}
	e.held++
	p.held[h] = struct{}{}
	h.timer = time.AfterFunc(e.until.Sub(now), func() { p.release(h) }) // under mu: release waits for it
	p.mu.Unlock()
	p.heldN.Add(1)
	return false
}

// release closes h, whose penalty is over, if stop has not.
func (p *penalties) release(h *heldConn) {
	p.mu.Lock()
	_, ok := p.held[h]
	if ok {
		delete(p.held, h)
		h.p.held--
	}
	p.mu.Unlock()
	if ok {
		h.conn.Close()
	}
}

// stop closes every held connection, once the server has stopped
// accepting; later ones are closed at once. It may be called again.
func (p *penalties) stop() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.stopped = true
	held := p.held
	p.held = make(map[*heldConn]struct{})
	p.mu.Unlock()
	for h := range held {
		h.timer.Stop()
		h.conn.Close()
	}
}

var (
	penaltiesDesc = prometheus.NewDesc("roomcast_abuse_penalties_total",
		"Client addresses penalised (--abuse-penalty) after a connection of theirs was closed for abuse, by reason: header_list, rapid_reset, refused_calls, message_size, unfinished_requests.", []string{"reason"}, nil)
	penalisedDesc = prometheus.NewDesc("roomcast_penalised_connections_total",
		"New connections from penalised addresses, not served: held unread until the penalty ended, or closed at once.", []string{"outcome"}, nil)
)

func (p *penalties) describe(ch chan<- *prometheus.Desc) {
	ch <- penaltiesDesc
	ch <- penalisedDesc
}

func (p *penalties) collect(ch chan<- prometheus.Metric) {
	for why := range numAbuses {
		ch <- prometheus.MustNewConstMetric(penaltiesDesc, prometheus.CounterValue, float64(p.given[why].Load()), abuseLabels[why])
	}
	ch <- prometheus.MustNewConstMetric(penalisedDesc, prometheus.CounterValue, float64(p.heldN.Load()), "held")
	ch <- prometheus.MustNewConstMetric(penalisedDesc, prometheus.CounterValue, float64(p.closedN.Load()), "closed")
}
