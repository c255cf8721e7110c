package client_test

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"github.com/roomcast/roomcast/client"
)

// largestWrite is a dialer whose connections record the largest single
// write the client made on them.
type largestWrite struct{ n atomic.Int64 }

func (l *largestWrite) option() client.Option {
	return client.WithDialOptions(grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return &recordedConn{Conn: c, l: l}, nil
	}))
}

type recordedConn struct {
	net.Conn
	l *largestWrite
}

func (c *recordedConn) Write(b []byte) (int, error) {
	for n := int64(len(b)); ; {
		cur := c.l.n.Load()
		if n <= cur || c.l.n.CompareAndSwap(cur, n) {
			break
		}
	}
	return c.Conn.Write(b)
}

// A Publisher's batch of more than 32 KiB (grpc-go's default write buffer)
// leaves the client in larger writes, and every publish gets its offset in
// order.
func TestPublisherBatchWritesPastGRPCDefaultBuffer(t *testing.T) {
	const perRound, maxRounds = 200, 20
	_, addr := start(t)
	ctx := testCtx(t)
	var largest largestWrite
	p := newPublisher(t, ctx, dial(t, addr, largest.option()))
	data := bytes.Repeat([]byte("p"), 1024)
	var next uint64 = 1
	for round := 0; round < maxRounds && largest.n.Load() <= 32<<10; round++ {
		calls := make([]*client.PublishCall, perRound)
		for i := range calls {
			calls[i] = p.PublishAsync(ctx, "big.batches", data)
		}
		for _, call := range calls {
			off, _, err := call.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if off != next {
				t.Fatalf("offset %d, want %d", off, next)
			}
			next++
		}
	}
	if n := largest.n.Load(); n <= 32<<10 {
		t.Errorf("largest write %d bytes after %d publishes of 1 KiB, want more than 32 KiB", n, next-1)
	}
}
