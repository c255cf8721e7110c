//go:build unix

package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/testsupport/childproc"
	"github.com/roomcast/roomcast/server"
)

// BenchmarkReceive measures what receiving costs a subscriber, per
// delivery: one subscriber of one room, 64-byte messages published as
// fast as the publisher can, through roomcast with the client package
// (Subscription.Next) and, for comparison in the same run, through an
// embedded NATS server with nats.go (a callback subscription, as nats.go's
// users mostly receive). The subscriber runs in a process of its own (this
// test binary, started again: see receiveChildMain), so that
// sub-ns/delivery and sub-allocs/delivery are its CPU time and heap
// allocations alone, from its subscription being ready to the last
// message; ns/op is the wall time per delivery, publisher and server in
// this process included. The subscriber's CPU profile is written to the
// file $ROOMCAST_BENCH_SUBSCRIBER_CPUPROFILE names.
//
//	go test -run '^$' -bench BenchmarkReceive -benchtime=50000x -count 6 ./client/
func BenchmarkReceive(b *testing.B) {
	benchReceive(b, 64, func(ctx context.Context, p *client.Publisher, data []byte, n int) error {
		return publishAll(ctx, p, "bench", data, n)
	}, func(nc *nats.Conn, data []byte, n int) error {
		for range n {
			if err := nc.Publish("bench", data); err != nil {
				return err
			}
		}
		return nc.Flush()
	})
}

// benchReceive runs a receive benchmark's two sub-benchmarks, each with a
// subscriber process of its own expecting b.N messages of size bytes to
// room (or subject) "bench": roomcast, whose messages viaRoomcast
// publishes with p, and nats, whose messages viaNATS publishes with nc;
// each returns once it has published n messages of data, or with the
// first error.
func benchReceive(b *testing.B, size int,
	viaRoomcast func(ctx context.Context, p *client.Publisher, data []byte, n int) error,
	viaNATS func(nc *nats.Conn, data []byte, n int) error,
) {
	data := make([]byte, size)
	b.Run("roomcast", func(b *testing.B) {
		addr := startReceiveServer(b)
		ctx := testCtx(b)
		p := newPublisher(b, ctx, dial(b, addr))
		child := startReceiveChild(b, "roomcast", addr, b.N, len(data))
		b.ResetTimer()
		if err := viaRoomcast(ctx, p, data, b.N); err != nil {
			b.Fatal(err)
		}
		child.report(b)
	})
	b.Run("nats", func(b *testing.B) {
		nc := startNATS(b)
		child := startReceiveChild(b, "nats", nc.ConnectedUrl(), b.N, len(data))
		b.ResetTimer()
		if err := viaNATS(nc, data, b.N); err != nil {
			b.Fatal(err)
		}
		child.report(b)
	})
}

// startReceiveServer starts a server whose backlog holds a whole run, so
// that the subscriber is not cut off as a slow consumer while it catches
// up, and returns its address.
func startReceiveServer(b *testing.B) string {
	_, addr := start(b, server.WithBrokerOptions(broker.WithBacklog(1<<20, 1<<30), broker.WithMaxRetainedBytes(1<<31)))
	return addr
}

// receiveChildRole makes this test binary a subscriber for
// BenchmarkReceive instead of running tests: its variable's value is
// "system address count size".
var receiveChildRole = childproc.Role{Name: "subscriber process", Env: "ROOMCAST_BENCH_RECEIVE"}

// receiveChildProfileEnv names the file a subscriber process writes its
// CPU profile to, if set; receiveChildMemProfileEnv, its allocation
// profile (every 512th byte sampled, of the whole process's life).
const (
	receiveChildProfileEnv    = "ROOMCAST_BENCH_SUBSCRIBER_CPUPROFILE"
	receiveChildMemProfileEnv = "ROOMCAST_BENCH_SUBSCRIBER_MEMPROFILE"
)

// A test binary started in receiveChildRole subscribes, before any test or
// TestMain runs (on a goroutine of its own, as an application receives).
func init() { receiveChildRole.RunIfSelected(receiveChildMain) }

// receiveChild is a subscriber in a process of its own.
type receiveChild struct {
	*childproc.Child
	n int
}

// startReceiveChild starts this test binary again as a subscriber of room
// (or subject) "bench" of the server of system at addr, expecting n
// messages of size bytes, and returns once it is subscribed.
func startReceiveChild(b *testing.B, system, addr string, n, size int) *receiveChild {
	c := &receiveChild{Child: receiveChildRole.Start(b, fmt.Sprintf("%s %s %d %d", system, addr, n, size)), n: n}
	if line, err := c.ReadLine(); err != nil || line != "ready" {
		b.Fatalf("subscriber process: %q, %v", line, err)
	}
	return c
}

// report waits for the child to receive every message, and reports what
// it spent.
func (c *receiveChild) report(b *testing.B) {
	line, err := c.ReadLine()
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	var cpu time.Duration
	var mallocs, bytes uint64
	if _, err := fmt.Sscan(line, &cpu, &mallocs, &bytes); err != nil {
		b.Fatalf("subscriber process said %q: %v", line, err)
	}
	if err := c.Wait(); err != nil {
		b.Fatalf("subscriber process: %v", err)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(c.n), "sub-ns/delivery")
	b.ReportMetric(float64(mallocs)/float64(c.n), "sub-allocs/delivery")
	b.ReportMetric(float64(bytes)/float64(c.n), "sub-B/delivery")
}

// receiveChildMain subscribes as spec says, prints "ready", receives the
// messages, and prints the CPU time (in nanoseconds), the heap allocations
// and the bytes they allocated.
func receiveChildMain(spec string) error {
	f := strings.Fields(spec)
	if len(f) != 4 {
		return fmt.Errorf("bad spec %q", spec)
	}
	n, err := strconv.Atoi(f[2])
	if err != nil {
		return err
	}
	size, err := strconv.Atoi(f[3])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var receive func() error
	switch f[0] {
	case "roomcast":
		c, err := client.Dial(f[1])
		if err != nil {
			return err
		}
		defer c.Close()
		sub, err := c.Subscribe(ctx, "bench")
		if err != nil {
			return err
		}
		defer sub.Close()
		receive = func() error {
			for got := 0; got < n; {
				ev, err := sub.Next(ctx)
				if err != nil {
					return err
				}
				if ev.Message == nil {
					return fmt.Errorf("event %+v, want a message", ev)
				}
				if len(ev.Message.GetData()) != size {
					return errors.New("a message without its payload")
				}
				got++
			}
			return nil
		}
	case "nats":
		nc, err := nats.Connect(f[1])
		if err != nil {
			return err
		}
		defer nc.Close()
		done := make(chan struct{})
		var got atomic.Int64
		sub, err := nc.Subscribe("bench", func(m *nats.Msg) {
			if len(m.Data) != size {
				panic("a message without its payload") // the child's own
			}
			if got.Add(1) == int64(n) {
				close(done)
			}
		})
		if err != nil {
			return err
		}
		if err := sub.SetPendingLimits(-1, -1); err != nil { // a slow consumer drops nothing
			return err
		}
		if err := nc.Flush(); err != nil {
			return err
		}
		receive = func() error {
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return fmt.Errorf("received %d of %d messages: %w", got.Load(), n, ctx.Err())
			}
		}
	default:
		return fmt.Errorf("unknown system %q", f[0])
	}
	stopProfiles, err := receiveChildRole.Profile(os.Getenv(receiveChildProfileEnv), os.Getenv(receiveChildMemProfileEnv))
	if err != nil {
		return err
	}
	defer stopProfiles()
	spent0, err := childproc.Usage()
	if err != nil {
		return err
	}
	fmt.Println("ready")
	if err := receive(); err != nil {
		return err
	}
	spent1, err := childproc.Usage()
	if err != nil {
		return err
	}
	fmt.Println(int64(spent1.CPU-spent0.CPU), spent1.Mallocs-spent0.Mallocs, spent1.Bytes-spent0.Bytes)
	return nil
}
