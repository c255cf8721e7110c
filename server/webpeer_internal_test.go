package server

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc/peer"
)

// A web request's peer address is its connection's, the one net.Addr of
// webConnContext, so that the anonymous callers' cache (callers.go) finds a
// connection's identity by it, as a gRPC connection's, rather than adding
// an address each request; without it, one parsed from RemoteAddr.
func TestWebRequestsShareTheirConnectionsAddress(t *testing.T) {
	var got []net.Addr
	h := webContext(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		p, _ := peer.FromContext(r.Context())
		got = append(got, p.Addr)
	}))
	conn := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4000}
	ctx := webConnContext(context.Background(), fakeConn{remote: conn})
	for range 2 {
		r := httptest.NewRequest(http.MethodPost, "/", nil).WithContext(ctx)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	if len(got) != 2 || got[0] != net.Addr(conn) || got[1] != net.Addr(conn) {
		t.Errorf("the requests' peer addresses are %v, want the connection's %p twice", got, conn)
	}
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.RemoteAddr = "198.51.100.7:5000"
	h.ServeHTTP(httptest.NewRecorder(), r)
	if a, ok := got[2].(*net.TCPAddr); !ok || a.String() != r.RemoteAddr {
		t.Errorf("a request without its connection's address has peer %v, want %s", got[2], r.RemoteAddr)
	}
}

// fakeConn is a net.Conn that only has a remote address.
type fakeConn struct {
	net.Conn
	remote net.Addr
}

func (c fakeConn) RemoteAddr() net.Addr { return c.remote }
