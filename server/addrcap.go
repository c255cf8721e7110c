package server

import (
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// While many connections await authentication the accepts are paced
// (acceptpace.go), and every new connection waits its turn in the kernel's
// listen backlog: one address that keeps thousands of idle connections
// coming (issue #13 (g)) would fill the backlog and lock every other
// client out with it. So the guard also caps the connections of one client
// address (clientKey: an IPv4 address, or an IPv6 /64) that await
// authentication at once; past it, a new connection from that address is
// refused as soon as it is accepted, before the pace and before grpc-go
// makes a transport for it (held unread for a moment, then reset:
// tarpit.go). The accept loop then drains that address's flood from the
// backlog at full speed, and the pace is spent on the others.

// DefaultMaxPendingPerAddress is the default of WithMaxPendingPerAddress:
// the accept pace's threshold, so that one address alone never brings on
// the pace for the others. An honest client awaits authentication on a
// handful of connections, for the moment between its dial and its first
// call; clients behind one NAT may have a hundred handshakes under way at
// once, and those past it retry.
const DefaultMaxPendingPerAddress = DefaultAcceptPaceAfter

// WithMaxPendingPerAddress caps the connections from one client address
// (an IPv6 one by its /64) that await authentication (accepted, with no
// authenticated call yet) at n: past it, a new connection from that
// address is refused as soon as it is accepted, never served (held
// unread, then reset: WithRefusedHold), counted in
// roomcast_connections_address_refused_total and logged, with the address,
// at most once a second. A connection leaves the count when it
// authenticates, closes, or is closed by the auth timeout. It applies only
// with WithAuthenticator and a WithAuthTimeout. Clients behind one NAT or
// a proxy that does not keep their addresses share one. The default is
// DefaultMaxPendingPerAddress (100); 0 is no cap.
func WithMaxPendingPerAddress(n int) Option {
	return func(c *config) { c.maxPendingPerAddr = n }
}

// validatePendingPerAddress checks WithMaxPendingPerAddress's setting.
func (l *limits) validatePendingPerAddress() error {
	if l.maxPendingPerAddr < 0 {
		return fmt.Errorf("server: max pending connections per address must not be negative, got %d", l.maxPendingPerAddr)
	}
	return nil
}

// addrPending are one address's connections awaiting authentication.
type addrPending struct {
	conns     map[*tracked]struct{}
	lastSweep time.Time // when the guard last looked for closed ones among them
}

// admitAddr reports whether c's address has fewer connections awaiting
// authentication than the cap; if not, it has refused c (held in the
// tarpit, or reset). key is the
// address's clientKey, "" when there is no cap. admit checks again, as
// the guard's other listener may have filled the address since.
func (g *connGuard) admitAddr(c net.Conn) (key string, ok bool) {
	if g.maxPerAddr <= 0 || g.authTimeout <= 0 {
		return "", true
	}
	key = clientKey(c.RemoteAddr())
	g.mu.Lock()
	full := g.addrFull(key)
	g.mu.Unlock()
	if full {
		g.refuseAddr(c, key)
		return key, false
	}
	return key, true
}

// addrFull reports whether the address key has its cap of connections
// awaiting authentication, having first forgotten those of them that
// closed, at most every sweepEvery. Caller holds g.mu.
func (g *connGuard) addrFull(key string) bool {
	a := g.pendingByAddr[key]
	if a == nil || len(a.conns) < g.maxPerAddr {
		return false
	}
	if now := time.Now(); now.Sub(a.lastSweep) >= sweepEvery {
		a.lastSweep = now
		for t := range a.conns {
			if t.isClosed() {
				g.drop(t)
			}
		}
	}
	return len(a.conns) >= g.maxPerAddr
}

// refuseAddr holds c, past its address key's cap, in the tarpit or closes
// it, and counts and logs it.
func (g *connGuard) refuseAddr(c net.Conn, key string) {
	n := g.addrRefused.Add(1)
	g.pit.refuse(c)
	g.warnAddr.Do(func() {
		g.log.Warn("refusing connections: the address has as many awaiting authentication as it may (--max-pending-per-address)",
			"address", key, "max", g.maxPerAddr, "refused_so_far", n)
	})
}

// addPending counts t, awaiting authentication, in the connections of its
// address, addr ("" without the cap). Caller holds g.mu.
func (g *connGuard) addPending(t *tracked, addr string) {
	if addr == "" {
		return
	}
	t.addr = addr
	a := g.pendingByAddr[t.addr]
	if a == nil {
		a = &addrPending{conns: make(map[*tracked]struct{})}
		g.pendingByAddr[t.addr] = a
	}
	a.conns[t] = struct{}{}
}

// removePending takes t out of its address's count, once it no longer
// awaits authentication. Caller holds g.mu.
func (g *connGuard) removePending(t *tracked) {
	a := g.pendingByAddr[t.addr]
	if a == nil {
		return
	}
	delete(a.conns, t)
	if len(a.conns) == 0 {
		delete(g.pendingByAddr, t.addr)
	}
}

// closeNow closes c, refused as it was accepted, with a reset rather than
// a FIN: a client dialling in a loop would otherwise leave the server a
// TIME_WAIT socket per dial.
func closeNow(c net.Conn) {
	if tcp, ok := c.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	c.Close()
}

var addrRefusedDesc = prometheus.NewDesc("roomcast_connections_address_refused_total",
	"Connections refused as soon as accepted (reset at once, or held unread for --refused-hold first): their client address (an IPv6 one by its /64) had --max-pending-per-address connections awaiting authentication.", nil, nil)
