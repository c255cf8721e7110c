package server

import (
	"context"
	"net"
	"reflect"
	"testing"

	"google.golang.org/grpc/peer"

	"github.com/roomcast/roomcast/auth"
)

// An anonymous caller's identity is made once per client address for calls:
// the same as access.identity's, shared, and free after the first call;
// streams still get identities of their own, which sessions key by pointer.
func TestCallIdentityIsSharedPerClient(t *testing.T) {
	a := &access{}
	at := func(ip string, port int) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: port}})
	}
	one, other := at("10.0.0.1", 1000), at("10.0.0.1", 2000) // one client, two connections
	id := a.callIdentity(one)
	if want := a.identity(one); id.Subject != want.Subject || id.Method != want.Method || !reflect.DeepEqual(id.Grants, want.Grants) {
		t.Fatalf("call identity %+v, want %+v", id, want)
	}
	if a.callIdentity(other) != id {
		t.Error("a client's second connection got an identity of its own")
	}
	if a.identity(one) == a.identity(one) {
		t.Error("streams share an identity")
	}
	if third := a.callIdentity(at("10.0.0.2", 1000)); third.Subject == id.Subject {
		t.Errorf("two clients share the subject %q", id.Subject)
	}
	if allocs := testing.AllocsPerRun(100, func() { a.callIdentity(one) }); allocs != 0 {
		t.Errorf("%v allocations per call for a known client, want 0", allocs)
	}
	authed := auth.NewContext(one, &auth.Identity{Subject: "svc", Method: auth.MethodAPIKey})
	if got := a.callIdentity(authed); got.Subject != "svc" {
		t.Errorf("authenticated call's identity %q, want svc", got.Subject)
	}
	for i := range maxCachedCallers + 1 { // past its bound, the cache starts again
		a.callIdentity(at(net.IPv4(10, 1, byte(i>>8), byte(i)).String(), 1))
	}
	if n := len(a.callers.ids); n > maxCachedCallers {
		t.Errorf("%d callers cached, bound %d", n, maxCachedCallers)
	}
}

// A connection's calls find their caller by the connection's address
// alone, whatever the other connections of the same client: the identity
// is the client's, shared, and costs no allocation.
func TestCallIdentityByConnection(t *testing.T) {
	a := &access{}
	one, other := &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 1000}, &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 2000}
	ctxOf := func(addr *net.TCPAddr) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{Addr: addr})
	}
	id := a.callIdentity(ctxOf(one))
	if a.callIdentity(ctxOf(other)) != id || a.callIdentity(ctxOf(one)) != id {
		t.Fatal("one client's connections have identities of their own")
	}
	if a.callers.byConn[one] != id || a.callers.byConn[other] != id {
		t.Error("a connection's identity is not kept by its address")
	}
	known := ctxOf(one)
	if allocs := testing.AllocsPerRun(100, func() { a.callIdentity(known) }); allocs != 0 {
		t.Errorf("%v allocations per call of a known connection, want 0", allocs)
	}
	unix := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.UnixAddr{Name: "@sock", Net: "unix"}})
	if u := a.callIdentity(unix); a.callIdentity(unix) != u {
		t.Error("a Unix socket's calls have identities of their own")
	}
	for i := range maxCachedCallers + 1 { // past its bound, it starts again
		a.callIdentity(ctxOf(&net.TCPAddr{IP: net.IPv4(10, 1, byte(i>>8), byte(i)), Port: 1}))
	}
	if n := len(a.callers.byConn); n > maxCachedCallers {
		t.Errorf("%d connections cached, bound %d", n, maxCachedCallers)
	}
}
