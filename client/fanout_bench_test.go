//go:build unix

package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/testsupport/childproc"
)

// BenchmarkPacedFanout is the bench's paced shape with the subscribers'
// side measured alone: 1,000 subscriptions of one room over 50
// connections, in a process of their own (this test binary, started
// again), each read by a goroutine calling Next with the subscription's
// context (roomcast) or by a callback (nats.go), and 100 messages of 1 KiB
// published per second, 100,000 deliveries per second. Where
// BenchmarkPacedReceive's one subscriber measures a read, this measures
// what a process of many subscriptions pays besides: its goroutines to
// schedule and their stacks to scan. sub-ns/delivery is the subscribers'
// process's CPU time per delivery; ns/op, the wall time per message
// published (10 ms, the pace, unless the subscribers fall behind). The
// subscribers' CPU and allocation profiles are written as
// BenchmarkReceive's are, by each child in turn to the same files, so that
// they hold the last child's: profile one system at a time.
//
//	go test -run '^$' -bench BenchmarkPacedFanout -benchtime=500x -count 5 ./client/
//	ROOMCAST_BENCH_SUBSCRIBER_CPUPROFILE=$PWD/sub.prof go test -run '^$' -bench 'BenchmarkPacedFanout/roomcast$' -benchtime=800x -count 1 ./client/
func BenchmarkPacedFanout(b *testing.B) {
	const (
		subs  = 1000
		conns = 50
		rate  = 100 // messages per second
		size  = 1024
	)
	data := make([]byte, size)
	paced := func(b *testing.B, publish func() error) {
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for range b.N {
			<-tick.C
			if err := publish(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("roomcast", func(b *testing.B) {
		addr := startReceiveServer(b)
		ctx := testCtx(b)
		p := newPublisher(b, ctx, dial(b, addr))
		child := startFanoutChild(b, "roomcast", addr, b.N, size, subs, conns)
		b.ResetTimer()
		paced(b, func() error {
			_, _, err := p.Publish(ctx, "bench", data)
			return err
		})
		child.report(b)
	})
	b.Run("nats", func(b *testing.B) {
		nc := startNATS(b)
		child := startFanoutChild(b, "nats", nc.ConnectedUrl(), b.N, size, subs, conns)
		b.ResetTimer()
		paced(b, func() error {
			if err := nc.Publish("bench", data); err != nil {
				return err
			}
			return nc.Flush()
		})
		child.report(b)
	})
}

// fanoutChildRole makes this test binary the subscribers of
// BenchmarkPacedFanout instead of running tests: its variable's value is
// "system address count size subscriptions connections".
var fanoutChildRole = childproc.Role{Name: "subscribers' process", Env: "ROOMCAST_BENCH_FANOUT"}

// A test binary started in fanoutChildRole subscribes before any test or
// TestMain runs, as receiveChildRole's does.
func init() { fanoutChildRole.RunIfSelected(fanoutChildMain) }

// startFanoutChild starts this test binary again as subs subscribers of
// room (or subject) "bench" over conns connections, each expecting n
// messages of size bytes, and returns once all are subscribed. Its report
// is per delivery: n times subs.
func startFanoutChild(b *testing.B, system, addr string, n, size, subs, conns int) *receiveChild {
	spec := fmt.Sprintf("%s %s %d %d %d %d", system, addr, n, size, subs, conns)
	c := &receiveChild{Child: fanoutChildRole.Start(b, spec), n: n * subs}
	if line, err := c.ReadLine(); err != nil || line != "ready" {
		b.Fatalf("subscribers' process: %q, %v", line, err)
	}
	return c
}

// fanoutChildMain subscribes as spec says, prints "ready", waits until
// every subscriber has received every message, and prints the CPU time
// (in nanoseconds), the heap allocations and the bytes they allocated.
func fanoutChildMain(spec string) error {
	f := strings.Fields(spec)
	if len(f) != 6 {
		return fmt.Errorf("bad spec %q", spec)
	}
	var nums [4]int
	for i := range nums {
		v, err := strconv.Atoi(f[2+i])
		if err != nil {
			return err
		}
		nums[i] = v
	}
	n, size, subs, conns := nums[0], nums[1], nums[2], nums[3]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var (
		wg       sync.WaitGroup
		failed   = make(chan error, subs)
		finished atomic.Int64 // subscribers that got every message
		done     = make(chan struct{})
	)
	complete := func() {
		if finished.Add(1) == int64(subs) {
			close(done)
		}
	}
	switch f[0] {
	case "roomcast":
		cs, err := dialAll(conns, func() (*client.Client, error) { return client.Dial(f[1]) })
		defer closeAll(cs, (*client.Client).Close)
		if err != nil {
			return err
		}
		for i := range subs {
			sub, err := cs[i%conns].Subscribe(ctx, "bench")
			if err != nil {
				return err
			}
			defer sub.Close()
			wg.Go(func() {
				for got := 0; got < n; {
					ev, err := sub.Next(ctx)
					if err == nil && (ev.Message == nil || len(ev.Message.GetData()) != size) {
						err = fmt.Errorf("event %+v, want a message of %d bytes", ev, size)
					}
					if err != nil {
						failed <- err
						return
					}
					got++
				}
				complete()
			})
		}
	case "nats":
		cs, err := dialAll(conns, func() (*nats.Conn, error) { return nats.Connect(f[1]) })
		defer closeAll(cs, func(nc *nats.Conn) error { nc.Close(); return nil })
		if err != nil {
			return err
		}
		for i := range subs {
			var got int // the callbacks of a subscription run one at a time
			sub, err := cs[i%conns].Subscribe("bench", func(m *nats.Msg) {
				if len(m.Data) != size {
					failed <- errors.New("a message without its payload")
				}
				if got++; got == n {
					complete()
				}
			})
			if err != nil {
				return err
			}
			if err := sub.SetPendingLimits(-1, -1); err != nil { // a slow consumer drops nothing
				return err
			}
		}
		for _, nc := range cs {
			if err := nc.Flush(); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown system %q", f[0])
	}
	stopProfiles, err := fanoutChildRole.Profile(os.Getenv(receiveChildProfileEnv), os.Getenv(receiveChildMemProfileEnv))
	if err != nil {
		return err
	}
	defer stopProfiles()
	spent0, err := childproc.Usage()
	if err != nil {
		return err
	}
	fmt.Println("ready")
	select {
	case <-done:
	case err := <-failed:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%d of %d subscribers got every message: %w", finished.Load(), subs, ctx.Err())
	}
	spent1, err := childproc.Usage()
	if err != nil {
		return err
	}
	fmt.Println(int64(spent1.CPU-spent0.CPU), spent1.Mallocs-spent0.Mallocs, spent1.Bytes-spent0.Bytes)
	cancel() // ends the receivers of a run that failed
	wg.Wait()
	return nil
}

// dialAll makes n connections with dial; on an error, those made so far.
func dialAll[C any](n int, dial func() (C, error)) ([]C, error) {
	cs := make([]C, 0, n)
	for range n {
		c, err := dial()
		if err != nil {
			return cs, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// closeAll closes cs.
func closeAll[C any](cs []C, close func(C) error) {
	for _, c := range cs {
		close(c)
	}
}
