// Package servertest runs roomcast servers for tests, on a loopback port,
// and connects to them; servers and connections are closed when the test
// ends.
package servertest

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/roomcast/roomcast/server"
)

// Start runs a server with opts on 127.0.0.1 and a free port for the test's
// duration, and returns it with its address. The server is closed, and its
// Serve checked, in the test's cleanup.
func Start(t testing.TB, opts ...server.Option) (*server.Server, string) {
	t.Helper()
	return StartAt(t, "127.0.0.1:0", opts...)
}

// StartAt is Start on addr: the address of a server the test just closed,
// say, to restart one in its place.
func StartAt(t testing.TB, addr string, opts ...server.Option) (*server.Server, string) {
	t.Helper()
	srv, err := server.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	ServeOn(t, srv, lis)
	return srv, lis.Addr().String()
}

// ServeOn serves srv on lis until the test ends, then closes srv, with
// Serve checked, in the test's cleanup: for a test whose listener is its
// own (one that wraps its connections, say).
func ServeOn(t testing.TB, srv *server.Server, lis net.Listener) {
	t.Helper()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

// Dial returns a connection to the server at addr, closed in the test's
// cleanup. It is plaintext unless opts give other transport credentials:
// the last of the options that set the same thing wins.
func Dial(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Context returns a context that ends with the test, or after 30 seconds:
// the deadline for anything a test waits on.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
