package server

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/peer"
)

// connGuard watches the server's connections from its listeners: it refuses
// a connection past the cap (accepting and closing it at once, so that its
// client fails fast and tries again later, rather than waiting in the
// kernel's backlog), and with an authenticator, closes a connection that has
// made no authenticated call within the auth timeout. A connection that
// never authenticates would otherwise be held for good, at 17 to 20 KB and
// three goroutines each.
//
// grpc-go is handed each connection as accepted, not wrapped: it reads a
// *net.TCPConn only once data is there, without pinning a 32 KB buffer to
// every idle connection, and sets its TCP user timeout, which it does for
// no other type. So the guard does not see a connection close; it finds
// the closed ones when it needs an exact count (at the cap, at most every
// sweepEvery, and when the metrics are read) and as they pile up, by asking
// each socket whether it is closed, which does no I/O. Only a connection
// that is no syscall.Conn (a listener of another kind) is wrapped to tell
// when it closes.
//
// Connections are marked authenticated by the tap (see tap.go), which knows
// them by their addresses, as connOf does: a stats handler would tell them
// apart directly, but grpc-go then reads the clock and allocates on every
// send. Once no connection awaits authentication, marking costs one atomic
// load per call.
//
// It also closes a connection on which calls keep being refused before
// they run (see refusedCall): each refusal costs the server little, but a
// client that ignores them can send them as fast as it can write. Such a
// closing penalises the client's address, and the guard serves no new
// connection from a penalised address (see penalty.go).
//
// It is safe for concurrent use.
type connGuard struct {
	max             int
	authTimeout     time.Duration // 0: connections need not authenticate
	maxRefused      int           // refused calls a connection may have within a second; 0: any number
	freeAddrRefused int           // refused calls an address may have within a second unpaused; 0: any number
	maxCrowded      int           // crowded refusals a connection may have within a second unpaused
	maxCredCrowded  int           // crowded refusals of one rate a credential may have within a second unpaused
	// Bytes of crowded refusals' bodies a connection, and a credential,
	// may have within a second unpaused (publishadvice.go).
	maxCrowdedBodies, maxCredCrowdedBodies int
	log                                    *slog.Logger
	warn                                   rate.Sometimes // the log line for refusals, at most once a minute
	warnRefused                            rate.Sometimes // the log line for connections closed for their refused calls, at most once a second
	warnTimeout                            rate.Sometimes // the log line for connections closed by the auth timeout, at most once a second
	warnAddr                               rate.Sometimes // the log line for connections refused past maxPerAddr, at most once a second
	maxPerAddr                             int            // connections of one address awaiting authentication at once; 0: any number (addrcap.go)

	pace *acceptPacer // nil: accepts are never paced (acceptpace.go)
	pit  *tarpit      // holds connections refused past maxPerAddr; nil: they are reset at once (tarpit.go)

	refused       atomic.Uint64
	timedOut      atomic.Uint64
	refusalCloses atomic.Uint64 // connections closed for their refused calls
	pausedRefused atomic.Int64  // nanoseconds connections were paused after abusive refusals (tap.go)
	pausedCrowded atomic.Int64  // the same, after crowded ones
	addrRefused   atomic.Uint64 // connections refused past maxPerAddr
	penalties     *penalties    // addresses whose new connections are not served (penalty.go); nil: none
	pending       atomic.Int64  // len(unauth), read without the lock

	mu            sync.Mutex
	conns         map[*tracked]struct{}   // accepted and, as of the last sweep, open
	byKey         map[string]*tracked     // the same, by connKey
	unauth        map[string]*tracked     // awaiting authentication, by connKey
	pendingByAddr map[string]*addrPending // the same, by clientKey; only with maxPerAddr
	refusedByAddr addressRefusals         // calls refused within the second, by clientKey
	lastSweep     time.Time
	sweepAt       int // sweep once conns has this many, so closed ones do not pile up
	// lastUnauthSweep is when pendingNow last looked for closed
	// connections among those awaiting authentication.
	lastUnauthSweep time.Time
}

// sweepEvery is how often, at most, the guard looks for closed connections
// when it is at the cap: a place that frees is seen within this long.
const sweepEvery = 100 * time.Millisecond

// yieldEvery is how many connections in a row the accept loop refuses,
// and the tarpit resets, before they let other goroutines run: a few
// hundred microseconds of system calls.
const yieldEvery = 16

// minSweepAt is the fewest connections that the guard sweeps for as they
// pile up.
const minSweepAt = 1024

// tracked is one accepted connection.
type tracked struct {
	conn   net.Conn
	raw    syscall.RawConn // nil for a wrapped connection, which sets closed itself
	closed atomic.Bool     // a wrapped connection was closed, or refusedCall closed it
	key    string          // its connKey
	addr   string          // its clientKey, while it awaits authentication under maxPerAddr
	timer  *time.Timer     // with an auth timeout: runs expire

	refusedCalls refusals // guarded by connGuard.mu
	crowdedCalls refusals // guarded by connGuard.mu
	// crowdedBodies counts bytes: the bodies of crowded refusals of the
	// publish byte rate (publishadvice.go). Guarded by connGuard.mu.
	crowdedBodies refusals
}

// isClosed reports whether the connection was closed, without reading or
// writing it: the socket of a closed net.Conn refuses Control.
func (t *tracked) isClosed() bool {
	if t.raw == nil {
		return t.closed.Load()
	}
	return t.raw.Control(func(uintptr) {}) != nil
}

func newConnGuard(cfg *config) *connGuard {
	g := &connGuard{
		max:                  cfg.maxConns,
		maxRefused:           cfg.maxRefusedCalls,
		freeAddrRefused:      cfg.addressRefusedCalls,
		maxCrowded:           freeCrowdedRefusals,
		maxCredCrowded:       freeCredentialCrowdedRefusals,
		maxCrowdedBodies:     freeCrowdedBodies,
		maxCredCrowdedBodies: freeCredentialCrowdedBodies,
		log:                  cfg.log,
		warn:                 rate.Sometimes{First: 1, Interval: time.Minute},
		warnRefused:          rate.Sometimes{First: 1, Interval: time.Second},
		warnTimeout:          rate.Sometimes{First: 1, Interval: time.Second},
		warnAddr:             rate.Sometimes{First: 1, Interval: time.Second},
		conns:                make(map[*tracked]struct{}),
		byKey:                make(map[string]*tracked),
		unauth:               make(map[string]*tracked),
		pendingByAddr:        make(map[string]*addrPending),
		sweepAt:              minSweepAt,
		penalties:            newPenalties(cfg),
	}
	if cfg.authn != nil {
		g.authTimeout = cfg.authTimeout
		g.maxPerAddr = cfg.maxPendingPerAddr
		if g.maxPerAddr > 0 && g.authTimeout > 0 {
			g.pit = newTarpit(cfg)
		}
	}
	if cfg.crowdedAllowance > 0 {
		g.maxCrowded = cfg.crowdedAllowance
	}
	if cfg.credCrowdedAllowance > 0 {
		g.maxCredCrowded = cfg.credCrowdedAllowance
	}
	if cfg.crowdedBodyAllowance > 0 {
		g.maxCrowdedBodies = cfg.crowdedBodyAllowance
	}
	if cfg.credCrowdedBodyAllowance > 0 {
		g.maxCredCrowdedBodies = cfg.credCrowdedBodyAllowance
	}
	g.pace = newAcceptPacer(cfg)
	return g
}

// connKey identifies a connection by its two ends, as grpc-go's peer has
// them; it is the key of connOf too.
func connKey(remote, local net.Addr) string { return string(appendConnKey(nil, remote, local)) }

// appendConnKey appends connKey(remote, local) to b, so that a map keyed by
// it is searched without building the string (every Subscribe stream, and
// every call the tap refuses, looks its connection up). TCP addresses, what
// every connection over the network has, are appended as they are, where
// String would build three strings each.
func appendConnKey(b []byte, remote, local net.Addr) []byte {
	b = appendAddr(b, remote)
	if local != nil {
		b = appendAddr(append(b, ' '), local)
	}
	return b
}

// appendAddr appends a as its String would: a TCP address as its AddrPort
// with an IPv4-mapped IP unmapped (a dual-stack listener accepts IPv4
// clients as ::ffff:a.b.c.d, which String, and the web handler's
// RemoteAddr, print as a.b.c.d), without String's three allocations.
func appendAddr(b []byte, a net.Addr) []byte {
	if tcp, ok := a.(*net.TCPAddr); ok && tcp.Zone == "" {
		if ap := tcp.AddrPort(); ap.Addr().IsValid() {
			return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).AppendTo(b)
		}
	}
	return append(b, a.String()...)
}

// listener returns lis with its connections guarded.
func (g *connGuard) listener(lis net.Listener) net.Listener {
	return &guardedListener{Listener: lis, g: g, closed: make(chan struct{})}
}

type guardedListener struct {
	net.Listener
	g         *connGuard
	closed    chan struct{} // closed by Close: an accept waiting for the pace ends
	closeOnce sync.Once
}

// Close closes the listener, and ends an accept waiting for the pace.
func (l *guardedListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// Accept returns the next connection within the caps (of the server, and
// of its address's connections awaiting authentication: addrcap.go) and
// from an address that is not penalised, refusing those past a cap (held
// in the tarpit, or reset) and holding or closing the penalised ones.
func (l *guardedListener) Accept() (net.Conn, error) {
	for refused := 1; ; refused++ {
		// A flood of refusals keeps this loop in system calls, which Go's
		// scheduler lets hold a P for up to 10 ms at a time before it
		// preempts it: every other goroutine queued on that P would wait.
		if refused%yieldEvery == 0 {
			runtime.Gosched()
		}
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		// Penalised connections first: redials from a penalised address,
		// thousands a second, must not take the accept pace's budget.
		if !l.g.penalties.admit(c) {
			continue
		}
		// Then an address's flood past its cap, for the same reason.
		addr, ok := l.g.admitAddr(c)
		if !ok {
			continue
		}
		if !l.g.pace.wait(l.closed, l.g.pendingNow) {
			c.Close()
			return nil, net.ErrClosed
		}
		if c = l.g.admit(c, addr); c != nil {
			return c, nil
		}
	}
}

// pendingNow is how many connections await authentication, having first
// forgotten those of them that closed, at most every sweepEvery, when the
// count is past the accept pace's threshold: a connection closed before
// its first call (a health check of a load balancer, a port scan) must not
// hold the pace until its auth timeout.
func (g *connGuard) pendingNow() int64 {
	n := g.pending.Load()
	if g.pace == nil || n <= g.pace.after {
		return n
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if now := time.Now(); now.Sub(g.lastUnauthSweep) >= sweepEvery {
		for _, t := range g.unauth {
			if t.isClosed() {
				g.drop(t)
			}
		}
		g.lastUnauthSweep = now
	}
	return g.pending.Load()
}

// admit returns c, tracked, or nil if the server has as many connections
// as it may (c closed), or its address addr (admitAddr's key) as many
// awaiting authentication (c refused: held in the tarpit, or reset).
func (g *connGuard) admit(c net.Conn, addr string) net.Conn {
	t := &tracked{conn: c}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			t.raw = raw
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if now := time.Now(); len(g.conns) >= g.sweepAt || len(g.conns) >= g.max && now.Sub(g.lastSweep) >= sweepEvery {
		g.sweep(now)
	}
	if len(g.conns) >= g.max {
		g.refused.Add(1)
		c.Close()
		g.warn.Do(func() {
			g.log.Warn("refusing connections: the server has as many as it may (--max-connections)", "max", g.max, "refused_so_far", g.refused.Load())
		})
		return nil
	}
	if addr != "" && g.addrFull(addr) { // filled through the guard's other listener since admitAddr: rare
		g.refuseAddr(c, addr) // takes only the tarpit's lock
		return nil
	}
	t.key = connKey(c.RemoteAddr(), c.LocalAddr())
	if old := g.byKey[t.key]; old != nil { // closed, not swept yet, and its ports reused
		g.drop(old)
	}
	g.conns[t] = struct{}{}
	g.byKey[t.key] = t
	if g.authTimeout > 0 {
		g.unauth[t.key] = t
		g.pending.Add(1)
		g.addPending(t, addr)
		t.timer = time.AfterFunc(g.authTimeout, func() { g.expire(t) }) // under mu: expire finds t in unauth
	}
	if t.raw == nil {
		return &guardedConn{Conn: c, t: t}
	}
	return c
}

// sweep forgets the connections that have closed. Caller holds g.mu.
func (g *connGuard) sweep(now time.Time) {
	for t := range g.conns {
		if t.isClosed() {
			g.drop(t)
		}
	}
	g.lastSweep = now
	g.sweepAt = max(2*len(g.conns), minSweepAt)
}

// drop forgets t, closed. Caller holds g.mu.
func (g *connGuard) drop(t *tracked) {
	delete(g.conns, t)
	if g.byKey[t.key] == t {
		delete(g.byKey, t.key)
	}
	g.forget(t)
}

// forget stops watching t for authentication, if it was. Caller holds g.mu.
func (g *connGuard) forget(t *tracked) bool {
	if t.timer == nil || g.unauth[t.key] != t {
		return false
	}
	delete(g.unauth, t.key)
	g.removePending(t)
	g.pace.authenticated(g.pending.Add(-1))
	t.timer.Stop()
	return true
}

// authenticated marks the connection of ctx's call as having made an
// authenticated call, so that it is kept past the auth timeout.
func (g *connGuard) authenticated(ctx context.Context) {
	if g.pending.Load() == 0 {
		return
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return
	}
	var buf [128]byte
	key := appendConnKey(buf[:0], p.Addr, p.LocalAddr)
	g.mu.Lock()
	defer g.mu.Unlock()
	if t := g.unauth[string(key)]; t != nil {
		g.forget(t)
	}
}

// expire closes t's connection if it has not authenticated.
func (g *connGuard) expire(t *tracked) {
	g.mu.Lock()
	expired := g.forget(t)
	g.mu.Unlock()
	if expired {
		n := g.timedOut.Add(1)
		g.warnTimeout.Do(func() {
			g.log.Warn("closed a connection that made no authenticated call within the auth timeout (--auth-timeout)",
				"peer", t.conn.RemoteAddr().String(), "closed_so_far", n)
		})
		t.conn.Close() // grpc-go's reader fails and the transport goes away
	}
}

// refusedCall counts a call of ctx's connection that was refused before it
// ran, and closes the connection once it has more than maxRefused within a
// second. Its calls in flight fail with UNAVAILABLE. The connection is
// closed rather than sent a GOAWAY: grpc-go sends one only to every
// connection at once (GracefulStop), and one written beside its own frames
// could interleave with them. It returns how long the tap should pause the
// connection's reading after this refusal: none within the connection's
// first freeRefusedCalls and its address's first freeAddrRefused
// (--address-refused-calls) within the second, then refusalPause's,
// doubling with the connection's refusals past its allowance, or past the
// address's (but never more than its own, as crowdedCall's); 0 for a
// connection the guard does not track.
func (g *connGuard) refusedCall(ctx context.Context) time.Duration {
	var byAddr *addressRefusals
	if g.freeAddrRefused > 0 {
		byAddr = &g.refusedByAddr
	}
	n, addrN, t, p := g.countRefusal(ctx, func(t *tracked) *refusals { return &t.refusedCalls }, 1, byAddr)
	if t == nil {
		return 0
	}
	past := n - freeRefusedCalls
	if g.freeAddrRefused > 0 {
		past = max(past, min(n, addrN-g.freeAddrRefused))
	}
	var wait time.Duration
	if past > 0 {
		wait = refusalPause(past)
	}
	// Of the refusals counted at once, only the first past the limit closes.
	if g.maxRefused <= 0 || n <= g.maxRefused || !t.closed.CompareAndSwap(false, true) {
		return wait
	}
	g.refusalCloses.Add(1)
	g.penalties.penalise(p.Addr, abuseRefused) // first, so that the client's next dial finds it
	t.conn.Close()                             // grpc-go's reader fails and the transport goes away
	g.warnRefused.Do(func() {
		g.log.Warn("closed a connection whose calls kept being refused (unauthenticated or past a limit): more than --max-refused-calls within a second",
			"peer", p.Addr.String(), "max", g.maxRefused, "closed_so_far", g.refusalCloses.Load())
	})
	return 0
}

// crowdedCall counts a call of ctx's connection that the tap refused past a
// rate whose advice was crowded (see crowdedRefusal), the credCrowded'th
// of its credential within the second, and returns how long the tap should
// pause the connection's reading after it: none within the connection's
// first freeCrowdedRefusals and the credential's first credAllowance (a
// publish rate's crowdedAllowance) or freeCredentialCrowdedRefusals,
// whichever is fewer (tests may allow fewer still), then
// refusalPause's, doubling with the connection's refusals past its
// allowance, or past the credential's (but never more than its own). It
// never closes the connection: the pauses alone keep such refusals near
// the allowance and a dozen a second, on a connection, or over a
// credential's connections (most pauses past its allowance are then a
// second), and a closing would penalise the client's address, and every
// client behind it.
func (g *connGuard) crowdedCall(ctx context.Context, credCrowded, credAllowance int) time.Duration {
	n, _, t, _ := g.countRefusal(ctx, func(t *tracked) *refusals { return &t.crowdedCalls }, 1, nil)
	if t == nil {
		return 0
	}
	maxCred := g.maxCredCrowded
	if credAllowance > 0 {
		maxCred = min(maxCred, credAllowance)
	}
	// Past the credential's allowance, a connection's pause grows with its
	// own crowded calls, not the credential's: a connection that shares the
	// credential (clients behind one address, a fleet on one key) and made
	// one is paused a millisecond, not the second a loop elsewhere earns.
	if past := max(n-g.maxCrowded, min(n, credCrowded-maxCred)); past > 0 {
		return refusalPause(past)
	}
	return 0
}

// countRefusal counts a refusal of ctx's connection, of weight n, in the
// counter that which picks of it, and with byAddr, one in its client
// address's there too; it returns how many the connection's counter and
// the address's hold within their seconds (0 for the address without
// byAddr), the connection and its peer; a nil connection for one the guard
// does not track, or closed (what is left are calls read before).
func (g *connGuard) countRefusal(ctx context.Context, which func(*tracked) *refusals, n int, byAddr *addressRefusals) (connN, addrN int, t *tracked, p *peer.Peer) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return 0, 0, nil, nil
	}
	var buf [128]byte
	key := appendConnKey(buf[:0], p.Addr, p.LocalAddr)
	g.mu.Lock()
	defer g.mu.Unlock()
	t = g.byKey[string(key)]
	if t == nil || t.closed.Load() {
		return 0, 0, nil, nil
	}
	now := time.Now()
	if byAddr != nil {
		addrN = byAddr.add(appendClientKey(buf[:0], p.Addr), now)
	}
	return which(t).addN(now, n), addrN, t, p
}

// stop stops every auth timer, once the server has stopped: the
// connections are closed; and closes the connections held for penalties
// and those held refused.
func (g *connGuard) stop() {
	g.penalties.stop()
	g.pit.stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, t := range g.unauth {
		g.forget(t)
	}
}

// guardedConn is a connection the guard cannot ask whether it is closed,
// which says so itself.
type guardedConn struct {
	net.Conn
	t *tracked
}

// Close closes the connection and marks it closed.
func (c *guardedConn) Close() error {
	c.t.closed.Store(true)
	return c.Conn.Close()
}

var (
	connsDesc    = prometheus.NewDesc("roomcast_connections", "Client connections open.", nil, nil)
	refusedDesc  = prometheus.NewDesc("roomcast_connections_refused_total", "Connections closed as soon as accepted: the server had as many as it may.", nil, nil)
	timedOutDesc = prometheus.NewDesc("roomcast_connections_auth_timeouts_total", "Connections closed for making no authenticated call within the auth timeout.", nil, nil)
	pacedDesc    = prometheus.NewDesc("roomcast_connections_paced_accepts_total", "Accepts that waited for the pace: more connections were awaiting authentication than --accept-pace-after, so the server accepted at most --accept-pace a second.", nil, nil)
	refusalDesc  = prometheus.NewDesc("roomcast_connections_refusal_closes_total", "Connections closed for having more than --max-refused-calls calls refused within a second before they ran: unauthenticated, or past the streams per credential or owing bytes of the publish or read byte rate.", nil, nil)
)

// Describe implements prometheus.Collector.
func (g *connGuard) Describe(ch chan<- *prometheus.Desc) {
	ch <- connsDesc
	ch <- refusedDesc
	ch <- timedOutDesc
	ch <- refusalDesc
	ch <- pacedDesc
	ch <- addrRefusedDesc
	ch <- refusedHeldDesc
	ch <- tapPausedDesc
	if g.penalties != nil {
		g.penalties.describe(ch)
	}
}

// Collect implements prometheus.Collector. It sweeps first, so that the
// count of connections is exact.
func (g *connGuard) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	g.sweep(time.Now())
	open := len(g.conns)
	g.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(connsDesc, prometheus.GaugeValue, float64(open))
	ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(g.refused.Load()))
	ch <- prometheus.MustNewConstMetric(timedOutDesc, prometheus.CounterValue, float64(g.timedOut.Load()))
	ch <- prometheus.MustNewConstMetric(refusalDesc, prometheus.CounterValue, float64(g.refusalCloses.Load()))
	ch <- prometheus.MustNewConstMetric(pacedDesc, prometheus.CounterValue, float64(g.pace.accepts()))
	ch <- prometheus.MustNewConstMetric(addrRefusedDesc, prometheus.CounterValue, float64(g.addrRefused.Load()))
	ch <- prometheus.MustNewConstMetric(refusedHeldDesc, prometheus.GaugeValue, float64(g.pit.held()))
	g.collectTapPauses(ch)
	if g.penalties != nil {
		g.penalties.collect(ch)
	}
}
