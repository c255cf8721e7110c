//go:build unix

package client_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/testsupport/childproc"
	"github.com/roomcast/roomcast/server"
)

// BenchmarkPublisherClient measures what publishing costs the process that
// publishes, per publish: 64-byte messages to one room of a server in a
// process of its own (this test binary, started again: see
// serverChildMain), so that allocs/op and cli-ns/publish (this process's
// CPU time) are the Publisher's, and its callers', alone. async publishes
// with PublishAsync from one goroutine and waits for the answers in
// another, as a program publishing at the stream's pace does; lanes shares
// the Publisher among DefaultMaxInFlight goroutines, each calling Publish.
//
//	go test -run '^$' -bench BenchmarkPublisherClient -benchmem -benchtime=200000x -count 3 ./client/
func BenchmarkPublisherClient(b *testing.B) {
	data := make([]byte, 64)
	b.Run("async", func(b *testing.B) {
		ctx := testCtx(b)
		p := newPublisher(b, ctx, dial(b, startServerChild(b)))
		b.ReportAllocs()
		cpu := cpuTime(b)
		b.ResetTimer()
		if err := publishAll(ctx, p, "bench", data, b.N); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cli-ns/publish")
	})
	b.Run("lanes", func(b *testing.B) {
		ctx := testCtx(b)
		p := newPublisher(b, ctx, dial(b, startServerChild(b)))
		work := make(chan struct{}, client.DefaultMaxInFlight)
		var wg sync.WaitGroup
		var failed sync.Once
		b.ReportAllocs()
		cpu := cpuTime(b)
		b.ResetTimer()
		for range client.DefaultMaxInFlight {
			wg.Go(func() {
				for range work {
					if _, _, err := p.Publish(ctx, "bench", data); err != nil {
						failed.Do(func() { b.Error(err) })
					}
				}
			})
		}
		for range b.N {
			work <- struct{}{}
		}
		close(work)
		wg.Wait()
		b.StopTimer()
		b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cli-ns/publish")
	})
}

// serverChild makes this test binary a roomcast server on a loopback port
// instead of running tests, until its standard input closes. Its variable's
// value is ignored.
var serverChild = childproc.Role{Name: "server process", Env: "ROOMCAST_BENCH_SERVER"}

func init() { serverChild.RunIfSelected(func(string) error { return serverChildMain() }) }

// serverChildMain serves on a loopback port, prints the address, and
// returns once standard input is closed.
func serverChildMain() error {
	srv, err := server.New()
	if err != nil {
		return err
	}
	defer srv.Close()
	return childproc.ServeLoopback(srv, func(addr net.Addr) error {
		fmt.Println(addr)
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // EOF when the parent is done
		return nil
	})
}

// publishAll publishes n messages of data to room with PublishAsync from
// this goroutine, their answers awaited in order by another, as a program
// publishing at the stream's pace does; it returns the first error.
func publishAll(ctx context.Context, p *client.Publisher, room string, data []byte, n int) error {
	calls := make(chan *client.PublishCall, client.DefaultMaxInFlight)
	waited := make(chan error, 1)
	go func() {
		var err error
		for call := range calls {
			if _, _, e := call.Wait(ctx); e != nil && err == nil {
				err = e
			}
		}
		waited <- err
	}()
	for range n {
		calls <- p.PublishAsync(ctx, room, data)
	}
	close(calls)
	return <-waited
}

// startServerChild starts this test binary again as a server, stopped at
// the end of the benchmark, and returns its address.
func startServerChild(b *testing.B) string {
	line, err := serverChild.Start(b, "1").ReadLine()
	if err != nil {
		b.Fatal(err)
	}
	return strings.TrimSpace(line)
}

// cpuTime is this process's CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	cpu, err := childproc.CPUTime()
	if err != nil {
		b.Fatal(err)
	}
	return cpu
}
