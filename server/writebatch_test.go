package server_test

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/server"
)

// writeSizes is a listener whose connections record the largest single
// write the server made on them.
type writeSizes struct {
	net.Listener
	largest atomic.Int64
}

func (l *writeSizes) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sizedConn{Conn: c, l: l}, nil
}

type sizedConn struct {
	net.Conn
	l *writeSizes
}

func (c *sizedConn) Write(b []byte) (int, error) {
	for n := int64(len(b)); ; {
		cur := c.l.largest.Load()
		if n <= cur || c.l.largest.CompareAndSwap(cur, n) {
			break
		}
	}
	return c.Conn.Write(b)
}

// A connection's frames are written in pieces larger than grpc-go's default
// write buffer (32 KiB) when its streams have that much queued at once, as
// a fan-out to many streams of one connection does; every stream still gets
// every message of its room, in order.
func TestFanoutWritesGatherPastGRPCDefaultBuffer(t *testing.T) {
	const streams, perRound, maxRounds = 20, 50, 40
	srv, err := server.New()
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis := &writeSizes{Listener: inner}
	servertest.ServeOn(t, srv, lis)
	ctx := testCtx(t)
	c := roomcastv1.NewBrokerServiceClient(servertest.Dial(t, inner.Addr().String()))
	subs := make([]*subscriber, streams)
	for i := range subs {
		subs[i] = subscribe(t, ctx, c, "wide")
	}
	payload := strings.Repeat("x", 1024)
	var next uint64 = 1 // the next offset every subscriber expects
	for round := 0; round < maxRounds && lis.largest.Load() <= 32<<10; round++ {
		for range perRound {
			publishText(t, ctx, c, "wide", payload)
		}
		var wg sync.WaitGroup
		errs := make([]error, streams)
		for i, s := range subs {
			wg.Go(func() {
				for off := next; off < next+perRound; off++ {
					m, err := s.recv()
					if err != nil {
						errs[i] = err
						return
					}
					if m.GetOffset() != off || m.GetText() != payload {
						errs[i] = fmt.Errorf("got offset %d (%d bytes), want %d", m.GetOffset(), len(m.GetText()), off)
						return
					}
				}
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("subscriber %d: %v", i, err)
			}
		}
		next += perRound
	}
	if n := lis.largest.Load(); n <= 32<<10 {
		t.Errorf("largest write %d bytes after %d messages to %d streams of one connection, want more than 32 KiB", n, next-1, streams)
	}
}
