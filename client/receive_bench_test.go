//go:build unix

package client_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/client"
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
	data := make([]byte, 64)
	b.Run("roomcast", func(b *testing.B) {
		addr := startReceiveServer(b)
		ctx := testCtx(b)
		p := newPublisher(b, ctx, dial(b, addr))
		child := startReceiveChild(b, "roomcast", addr, b.N, len(data))
		b.ResetTimer()
		if err := publishAll(ctx, p, "bench", data, b.N); err != nil {
			b.Fatal(err)
		}
		child.report(b)
	})
	b.Run("nats", func(b *testing.B) {
		nc := startNATS(b)
		child := startReceiveChild(b, "nats", nc.ConnectedUrl(), b.N, len(data))
		b.ResetTimer()
		for range b.N {
			if err := nc.Publish("bench", data); err != nil {
				b.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
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

// receiveChildEnv makes this test binary a subscriber for BenchmarkReceive
// instead of running tests: its value is "system address count size".
const receiveChildEnv = "ROOMCAST_BENCH_RECEIVE"

// receiveChildProfileEnv names the file a subscriber process writes its
// CPU profile to, if set; receiveChildMemProfileEnv, its allocation
// profile (every 512th byte sampled, of the whole process's life).
const (
	receiveChildProfileEnv    = "ROOMCAST_BENCH_SUBSCRIBER_CPUPROFILE"
	receiveChildMemProfileEnv = "ROOMCAST_BENCH_SUBSCRIBER_MEMPROFILE"
)

// A test binary started with receiveChildEnv subscribes, before any test
// or TestMain runs. It receives on a goroutine of its own: package
// initialization runs on the main goroutine locked to the main thread,
// where every wake-up of a receiver blocked in Next or in a callback would
// cost a switch of threads that no application pays.
func init() {
	if spec := os.Getenv(receiveChildEnv); spec != "" {
		errc := make(chan error, 1)
		go func() { errc <- receiveChildMain(spec) }()
		if err := <-errc; err != nil {
			fmt.Fprintln(os.Stderr, "subscriber process:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// receiveChild is a subscriber in a process of its own.
type receiveChild struct {
	cmd *exec.Cmd
	out *bufio.Reader
	n   int
}

// startReceiveChild starts this test binary again as a subscriber of room
// (or subject) "bench" of the server of system at addr, expecting n
// messages of size bytes, and returns once it is subscribed.
func startReceiveChild(b *testing.B, system, addr string, n, size int) *receiveChild {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d %d", receiveChildEnv, system, addr, n, size))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &receiveChild{cmd: cmd, out: bufio.NewReader(out), n: n}
	b.Cleanup(func() {
		if c.cmd != nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	if line, err := c.out.ReadString('\n'); err != nil || line != "ready\n" {
		b.Fatalf("subscriber process: %q, %v", line, err)
	}
	return c
}

// report waits for the child to receive every message, and reports what
// it spent.
func (c *receiveChild) report(b *testing.B) {
	line, err := c.out.ReadString('\n')
	if err != nil {
		b.Fatalf("subscriber process: %v", err)
	}
	b.StopTimer()
	var cpu time.Duration
	var mallocs, bytes uint64
	if _, err := fmt.Sscan(line, &cpu, &mallocs, &bytes); err != nil {
		b.Fatalf("subscriber process said %q: %v", line, err)
	}
	if err := c.cmd.Wait(); err != nil {
		b.Fatalf("subscriber process: %v", err)
	}
	c.cmd = nil
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
	if file := os.Getenv(receiveChildProfileEnv); file != "" {
		f, err := os.Create(file)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if file := os.Getenv(receiveChildMemProfileEnv); file != "" {
		runtime.MemProfileRate = 512
		defer func() {
			if err := writeHeapProfile(file); err != nil {
				fmt.Fprintln(os.Stderr, "subscriber process:", err)
			}
		}()
	}
	cpu0, mallocs0, bytes0 := usage()
	fmt.Println("ready")
	if err := receive(); err != nil {
		return err
	}
	cpu1, mallocs1, bytes1 := usage()
	fmt.Println(int64(cpu1-cpu0), mallocs1-mallocs0, bytes1-bytes0)
	return nil
}

// usage is the process's CPU time, heap allocations and bytes allocated so
// far.
func usage() (time.Duration, uint64, uint64) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ms.Mallocs, ms.TotalAlloc
}

// writeHeapProfile writes the process's allocation profile to file.
func writeHeapProfile(file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
