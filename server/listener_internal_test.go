package server

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/roomcast/roomcast/auth"
)

// The guard hands grpc-go TCP connections as accepted: grpc-go reads a
// *net.TCPConn without pinning a buffer to it while it is idle (32 KB per
// idle connection otherwise), and sets its TCP user timeout on no other
// type. It finds the closed ones itself.
func TestGuardHandsOnTCPConnectionsUnwrapped(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	g := newConnGuard(&config{log: slog.New(slog.DiscardHandler), limits: limits{maxConns: 1}})
	guarded := g.listener(lis)
	accept := func() net.Conn {
		t.Helper()
		client, err := net.DialTimeout("tcp", lis.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		c, err := guarded.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := accept()
	if _, ok := c.(*net.TCPConn); !ok {
		t.Errorf("Accept returned a %T, want the *net.TCPConn as accepted", c)
	}
	c.Close() // as grpc-go does: the guard is not told
	g.mu.Lock()
	g.lastSweep = time.Time{} // the next Accept at the cap looks for closed connections
	g.mu.Unlock()
	if c := accept(); c == nil {
		t.Error("a connection was refused while the only other one was closed")
	} else {
		c.Close()
	}
}

// While more connections than the threshold await authentication, the
// guard paces accepts: past the pacer's burst, an accept waits for its turn
// and is counted. Below the threshold, none waits. The pacer here allows
// one accept a second, so that the second accept past the threshold always
// finds it empty.
func TestGuardPacesAcceptsWhileManyConnectionsAwaitAuthentication(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	authn, err := auth.NewAuthenticator(auth.WithAnonymous(auth.Grants{}))
	if err != nil {
		t.Fatal(err)
	}
	g := newConnGuard(&config{log: slog.New(slog.DiscardHandler), authn: authn,
		limits: limits{maxConns: 1000, authTimeout: time.Hour, acceptPaceAfter: 2, acceptPace: 1, acceptPaceBurst: 1}})
	defer g.stop()
	guarded := g.listener(lis)
	accept := func() {
		t.Helper()
		client, err := net.DialTimeout("tcp", lis.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		c, err := guarded.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	for range 3 { // the third finds 2 awaiting authentication, not more
		accept()
	}
	if n := g.pace.accepts(); n != 0 {
		t.Fatalf("%d accepts paced with at most 2 connections awaiting authentication, want 0", n)
	}
	accept() // the pacer's one token
	accept()
	if n := g.pace.accepts(); n != 1 {
		t.Errorf("%d accepts paced past the pacer's burst with %d connections awaiting authentication, want 1", n, g.pending.Load())
	}
}

// A connection's key is its addresses as String prints them, whichever
// form the socket gave: a dual-stack listener's IPv4 clients come as
// ::ffff:a.b.c.d, which the web handler's RemoteAddr prints as a.b.c.d;
// keyed apart, an authenticated web connection was never found again.
func TestAppendAddrIsString(t *testing.T) {
	for _, a := range []net.Addr{
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1).To4(), Port: 5},
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5}, // the 16-byte, mapped form
		&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 443, Zone: "eth0"},
		&net.TCPAddr{Port: 7},
		&net.UnixAddr{Name: "/run/roomcast.sock", Net: "unix"},
	} {
		if got, want := string(appendAddr(nil, a)), a.String(); got != want {
			t.Errorf("appendAddr(%#v) = %q, want %q as String has it", a, got, want)
		}
	}
}
