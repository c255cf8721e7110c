package server_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/roomcast/roomcast/server"
)

// dialSilent connects to addr and sends nothing, once the server has begun
// the connection's handshake: it has written its SETTINGS frame.
func dialSilent(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 9)); err != nil {
		t.Fatalf("the server wrote no frame header: %v", err)
	}
}

// A client that connects and never sends its preface (a port scan, a
// load balancer's TCP check) must not hold up a stop: grpc-go's Stop waits
// for every connection in its handshake, 120 s by default, and a server
// without credentials has no auth timeout to close it.
func TestAConnectionThatNeverSendsItsPrefaceDoesNotHoldUpAStop(t *testing.T) {
	for _, stop := range []struct {
		name string
		stop func(*server.Server)
	}{
		{"Close", func(s *server.Server) { s.Close() }},
		{"Shutdown past its deadline", func(s *server.Server) {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			s.Shutdown(ctx)
		}},
	} {
		t.Run(stop.name, func(t *testing.T) {
			srv, addr := start(t, server.WithHandshakeTimeout(300*time.Millisecond))
			dialSilent(t, addr)
			stopped := make(chan struct{})
			go func() {
				stop.stop(srv)
				close(stopped)
			}()
			select {
			case <-stopped:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s has not returned 10 s later, with a connection that sent nothing", stop.name)
			}
		})
	}
}
