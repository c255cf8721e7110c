package server

import (
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/testsupport/fakeclock"
)

func testPenalties(t *testing.T, longest time.Duration) (*penalties, *fakeclock.Clock) {
	t.Helper()
	clock := fakeclock.New(time.Unix(1_000_000, 0))
	p := newPenalties(&config{abusePenalty: longest, log: slog.New(slog.DiscardHandler), penaltyClock: clock.Now})
	t.Cleanup(p.stop)
	return p, clock
}

// loopback accepts connections on 127.0.0.1 and dials them from the local
// address from: it returns the server's side of each and the client's.
type loopback struct {
	t   *testing.T
	lis net.Listener
}

func newLoopback(t *testing.T) *loopback {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	return &loopback{t, lis}
}

func (l *loopback) conn(from string) (server, client net.Conn) {
	l.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	client, err := d.Dial("tcp", l.lis.Addr().String())
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { client.Close() })
	if server, err = l.lis.Accept(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { server.Close() })
	return server, client
}

// closedByServer reports whether the server closed client, waiting up to
// a second for it.
func closedByServer(client net.Conn) bool {
	client.SetReadDeadline(time.Now().Add(time.Second))
	_, err := client.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// A penalty lasts a second, doubles while the address offends again soon
// after each one ends (within its length, at least minRepeatWindow), up
// to the longest, and starts over once it stays quiet that long. Offences
// during a penalty change nothing.
func TestPenaltiesExpireAndDouble(t *testing.T) {
	p, clock := testPenalties(t, 4*time.Second)
	lb := newLoopback(t)
	addr := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1234}
	served := func() bool {
		t.Helper()
		c, _ := lb.conn("127.0.0.1")
		return p.admit(c)
	}
	if !served() {
		t.Fatal("a connection was not served before any penalty")
	}
	var lengths []time.Duration
	for range 5 {
		p.penalise(addr, abuseResets)
		p.penalise(addr, abuseHeaders) // its other connections, cut too
		n := time.Duration(0)
		for ; !served(); n += 250 * time.Millisecond {
			clock.Advance(250 * time.Millisecond)
		}
		lengths = append(lengths, n)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}
	for i := range want {
		if lengths[i] != want[i] {
			t.Fatalf("penalties lasted %v, want %v", lengths, want)
		}
	}
	// Again within the window but past the last penalty's length: doubled
	// still (offences that take a while to repeat, such as a paced refill).
	clock.Advance(minRepeatWindow - time.Second)
	p.penalise(addr, abuseUnfinished)
	clock.Advance(4*time.Second - 250*time.Millisecond)
	if served() {
		t.Fatal("an offence 9 s after a penalty ended started over")
	}
	clock.Advance(250 * time.Millisecond)
	if !served() {
		t.Fatal("not served once the doubled penalty, at the longest, ended")
	}
	clock.Advance(minRepeatWindow) // quiet for the window
	p.penalise(addr, abuseRefused)
	if served() {
		t.Fatal("served at once after a new offence")
	}
	clock.Advance(time.Second)
	if !served() {
		t.Error("not served a second after an offence following a quiet spell: the penalty did not start over")
	}
	if got := p.given[abuseResets].Load() + p.given[abuseRefused].Load() + p.given[abuseUnfinished].Load(); got != 7 {
		t.Errorf("%d penalties counted, want 7", got)
	}
	if got := p.given[abuseHeaders].Load(); got != 0 {
		t.Errorf("%d penalties counted for offences during a penalty, want 0", got)
	}
}

// The table holds at most maxAddrs addresses, forgetting the least recently
// penalised; an address whose penalty and its doubling time are over is
// forgotten as new ones come.
func TestPenaltiesTableIsBounded(t *testing.T) {
	p, clock := testPenalties(t, time.Minute)
	p.maxAddrs = 4
	addr := func(i int) net.Addr { return &net.TCPAddr{IP: net.IPv4(10, 0, 0, byte(i)), Port: 1} }
	for i := range 10 {
		p.penalise(addr(i), abuseResets)
		if n := len(p.byKey); n > p.maxAddrs || p.order.Len() != n {
			t.Fatalf("%d addresses in the table (%d in order) after %d penalties, want at most %d", n, p.order.Len(), i+1, p.maxAddrs)
		}
	}
	for i := range 10 {
		if _, ok := p.byKey[clientKey(addr(i))]; ok != (i >= 6) {
			t.Errorf("address %d remembered: %v, want %v", i, ok, i >= 6)
		}
	}
	clock.Advance(firstPenalty + minRepeatWindow) // past the penalties and their windows
	p.penalise(addr(100), abuseResets)
	if n := len(p.byKey); n != 1 {
		t.Errorf("%d addresses remembered after the others' penalties were over, want 1", n)
	}
	if want := clock.Now().Add(firstPenalty).UnixNano(); p.latest.Load() != want {
		t.Errorf("latest = %d, want the new penalty's end %d", p.latest.Load(), want)
	}
}

// A penalised address's new connections are held unread, up to
// maxHeldPerAddr per address and maxHeld in all, and the rest are closed at
// once; held ones are closed when the penalty ends, and by stop.
func TestPenaltiesHoldABoundedNumber(t *testing.T) {
	p, _ := testPenalties(t, time.Minute)
	p.maxHeldPerAddr, p.maxHeld = 2, 3
	lb := newLoopback(t)
	for _, ip := range []string{"127.0.0.1", "127.0.0.2"} {
		p.penalise(&net.TCPAddr{IP: net.ParseIP(ip)}, abuseHeaders)
	}
	var held, closed []net.Conn
	for _, ip := range []string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2"} {
		server, client := lb.conn(ip)
		if p.admit(server) {
			t.Fatalf("a connection from penalised %s was served", ip)
		}
		p.mu.Lock()
		_, isHeld := p.held[heldOf(p, server)]
		p.mu.Unlock()
		if isHeld {
			held = append(held, client)
		} else {
			closed = append(closed, client)
		}
	}
	if len(held) != 3 || len(closed) != 2 || p.heldN.Load() != 3 || p.closedN.Load() != 2 {
		t.Fatalf("%d held, %d closed (counted %d, %d), want 3 held (2 of one address, 1 of the other: 3 in all) and 2 closed",
			len(held), len(closed), p.heldN.Load(), p.closedN.Load())
	}
	for _, c := range closed {
		if !closedByServer(c) {
			t.Error("a connection past the bounds is still open")
		}
	}
	p.stop()
	for _, c := range held {
		if !closedByServer(c) {
			t.Error("a held connection is still open after stop")
		}
	}
	server, client := lb.conn("127.0.0.1")
	if p.admit(server) || !closedByServer(client) {
		t.Error("a penalised connection after stop was not closed at once")
	}
}

// heldOf is the held entry of c, nil if c is not held. Caller holds p.mu.
func heldOf(p *penalties, c net.Conn) *heldConn {
	for h := range p.held {
		if h.conn == c {
			return h
		}
	}
	return nil
}

// A held connection is closed when its penalty ends.
func TestPenaltiesReleaseHeldConnections(t *testing.T) {
	p, clock := testPenalties(t, time.Minute)
	lb := newLoopback(t)
	p.penalise(&net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, abuseResets)
	clock.Advance(firstPenalty - 50*time.Millisecond) // the penalty ends 50 ms from now, in real time
	server, client := lb.conn("127.0.0.1")
	if p.admit(server) {
		t.Fatal("served during the penalty")
	}
	if held, closed := p.heldN.Load(), p.closedN.Load(); held != 1 || closed != 0 {
		t.Fatalf("%d held and %d closed at once, want the connection held", held, closed)
	}
	if !closedByServer(client) {
		t.Error("a held connection is still open after its penalty")
	}
	p.mu.Lock()
	n := len(p.held)
	p.mu.Unlock()
	if n != 0 {
		t.Errorf("%d connections held after the penalty, want 0", n)
	}
}
