//go:build unix

package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/serveconfig"
	"github.com/roomcast/roomcast/internal/testsupport/childproc"
	"github.com/roomcast/roomcast/server"
)

// BenchmarkPublishServe measures a unary Publish as roomcast serve runs it
// by default: metrics on, the access log on at info (written as text to a
// discarding writer), with authentication off ("open") and on with an API
// key ("apikey"); 64-byte messages to one room with one subscriber, 16
// calls in flight on one connection. "web-open" and "web-apikey" make the
// same calls on the server's web listener (ServeWeb: net/http and
// connect-go), with the same grpc-go client speaking the gRPC protocol
// over h2c, as attack (i) of issue #13 does; the subscriber stays on the
// gRPC port. The server runs in a process of its
// own (this test binary, started again as a server: see serveChild), so
// that server-µs/publish is the server's CPU time alone, user and system,
// per publish, and server-allocs/publish its heap allocations; ns/op and
// allocs/op are the client's. The server's CPU
// profile is written to the file $ROOMCAST_BENCH_SERVER_CPUPROFILE names,
// its allocation profile to $ROOMCAST_BENCH_SERVER_MEMPROFILE's;
// $ROOMCAST_BENCH_STREAM_WORKERS overrides its number of stream workers.
// With $ROOMCAST_BENCH_GC_HEADROOM set, the server process tunes its
// garbage collector to that many bytes, as serve --gc-headroom does. With
// $ROOMCAST_BENCH_NO_SUBSCRIBER set, the room has no subscriber. With
// $ROOMCAST_BENCH_NO_DEADLINE set, the calls carry no deadline, so no
// grpc-timeout, as the client package's Publish sends them (see
// client/deadline.go).
//
//	go test -run '^$' -bench BenchmarkPublishServe -benchmem -benchtime=20000x -count 6 ./server/
func BenchmarkPublishServe(b *testing.B) {
	payload := &roomcastv1.PublishRequest_Data{Data: make([]byte, 64)}
	for _, mode := range []string{"open", "apikey", "web-open", "web-apikey"} {
		b.Run(mode, func(b *testing.B) {
			child, ctx, c := startServeTarget(b, mode)
			b.ReportAllocs()
			b.SetParallelism(8) // with GOMAXPROCS 2: 16 calls in flight
			cpu0, mallocs0 := child.usage(b)
			b.ResetTimer()
			callCtx := ctx
			if os.Getenv(noDeadlineEnv) != "" {
				callCtx = context.WithoutCancel(ctx)
			}
			b.RunParallel(func(pb *testing.PB) {
				req := &roomcastv1.PublishRequest{Room: "bench", Payload: payload}
				for pb.Next() {
					if _, err := c.Publish(callCtx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			cpu1, mallocs1 := child.usage(b)
			b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/1e3/float64(b.N), "server-µs/publish")
			b.ReportMetric(float64(mallocs1-mallocs0)/float64(b.N), "server-allocs/publish")
			reportRate(b)
		})
	}
}

// noDeadlineEnv, if set, has the benchmark's calls carry no deadline.
const noDeadlineEnv = "ROOMCAST_BENCH_NO_DEADLINE"

// subscribeAndDrain subscribes to the benchmark's room at addr and reads
// every message, until the function it returns is called.
func subscribeAndDrain(b *testing.B, ctx context.Context, addr string) (stop func()) {
	subCtx, cancel := context.WithCancel(ctx)
	sub := subscribe(b, subCtx, dial(b, addr), "bench")
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			if _, err := sub.stream.Recv(); err != nil {
				return
			}
		}
	}()
	return func() { cancel(); <-drained }
}

// noSubscriberEnv, if set, leaves the room without a subscriber, so that
// what delivering each message costs the server is the difference.
const noSubscriberEnv = "ROOMCAST_BENCH_NO_SUBSCRIBER"

// serveChildRole makes this test binary a server for BenchmarkPublishServe
// instead of running tests: its variable's value is the mode.
var serveChildRole = childproc.Role{Name: "server process", Env: "ROOMCAST_BENCH_SERVE"}

// serveChildMemProfileEnv names the file a server process writes its
// allocation profile to, if set.
const serveChildMemProfileEnv = "ROOMCAST_BENCH_SERVER_MEMPROFILE"

// serveChildWorkersEnv, if set, overrides the server's number of grpc-go
// stream workers (0: none, a goroutine per call), to compare.
const serveChildWorkersEnv = "ROOMCAST_BENCH_STREAM_WORKERS"

// serveChildProfileEnv names the file a server process writes its CPU
// profile to, if set: what -cpuprofile would write of the server's side.
const serveChildProfileEnv = "ROOMCAST_BENCH_SERVER_CPUPROFILE"

// serveChildHeadroomEnv, if set, is the server process's GC headroom in
// bytes (serveconfig.StartGCTuner), to compare.
const serveChildHeadroomEnv = "ROOMCAST_BENCH_GC_HEADROOM"

// serveChildNoCommandRatesEnv, if set, lifts the server's command rates,
// per stream and per credential, so that every command runs.
const serveChildNoCommandRatesEnv = "ROOMCAST_BENCH_NO_COMMAND_RATES"

// A test binary started in serveChildRole serves, before any test or
// TestMain runs.
func init() { serveChildRole.RunIfSelected(serveChildMain) }

// serveChild is a server in a process of its own.
type serveChild struct {
	*childproc.Child
	addr    string
	webAddr string // its web listener's, in the web modes
	key     string // an API key it accepts, if it authenticates
}

// startServeTarget starts a server in mode in a process of its own (see
// startServeChild) and returns it, a context carrying its credential, and
// a client of it; unless $ROOMCAST_BENCH_NO_SUBSCRIBER is set, a
// subscriber of the benchmark's room drains it until the benchmark ends.
func startServeTarget(b *testing.B, mode string) (*serveChild, context.Context, roomcastv1.BrokerServiceClient) {
	child := startServeChild(b, mode)
	ctx := testCtx(b)
	if child.key != "" {
		ctx = bearer(ctx, child.key)
	}
	target := child.addr
	if child.webAddr != "" {
		target = child.webAddr
	}
	c := dial(b, target)
	if os.Getenv(noSubscriberEnv) == "" {
		b.Cleanup(subscribeAndDrain(b, ctx, child.addr))
	}
	return child, ctx, c
}

// startServeChild starts this test binary again as a server in mode; it
// stops when the benchmark ends.
func startServeChild(b *testing.B, mode string) *serveChild {
	c := &serveChild{Child: serveChildRole.Start(b, mode)}
	line, err := c.ReadLine()
	if err != nil {
		b.Fatal(err)
	}
	c.addr, c.key, _ = strings.Cut(strings.TrimSpace(line), " ")
	if strings.HasPrefix(mode, "web-") {
		c.webAddr, c.key, _ = strings.Cut(c.key, " ")
	}
	return c
}

// usage is the child's CPU time and heap allocations so far.
func (c *serveChild) usage(b *testing.B) (time.Duration, uint64) {
	s := c.spent(b)
	return s.CPU, s.Mallocs
}

// spent is what the child has used so far.
func (c *serveChild) spent(b *testing.B) childproc.Spent {
	if err := c.WriteLine("cpu"); err != nil {
		b.Fatal(err)
	}
	line, err := c.ReadLine()
	if err != nil {
		b.Fatal(err)
	}
	var s childproc.Spent
	if _, err := fmt.Sscan(line, &s.CPU, &s.Mallocs, &s.Bytes); err != nil {
		b.Fatalf("server process said %q: %v", line, err)
	}
	return s
}

// serveChildMain runs the child's server: it prints its address and API
// key, then answers each line "cpu" on stdin with its CPU time in
// nanoseconds, its heap allocations and the bytes they took so far, until
// stdin closes.
func serveChildMain(mode string) error {
	opts := []server.Option{
		server.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		server.WithAccessLog(slog.LevelInfo),
		server.WithMetrics(prometheus.NewRegistry()),
		server.WithBrokerOptions(broker.WithBacklog(1<<16, 64<<20), broker.WithMaxRetainedBytes(1<<30)),
	}
	if n, err := strconv.Atoi(os.Getenv(serveChildWorkersEnv)); err == nil {
		opts = append(opts, server.WithGRPCOptions(grpc.NumStreamWorkers(uint32(n))))
	}
	if os.Getenv(serveChildNoCommandRatesEnv) != "" {
		opts = append(opts, server.WithCommandRate(0, 0), server.WithCredentialCommandRate(0, 0))
	}
	var key string
	web := strings.HasPrefix(mode, "web-")
	switch strings.TrimPrefix(mode, "web-") {
	case "open":
	case "apikey", "apikey-one-stream":
		secret, entry, err := auth.NewAPIKey()
		if err != nil {
			return err
		}
		every, err := auth.ParsePatterns(">")
		if err != nil {
			return err
		}
		entry.Subject, entry.Grants = "svc", auth.Grants{Publish: every, Subscribe: every}
		keys, err := auth.NewAPIKeyStore(entry)
		if err != nil {
			return err
		}
		a, err := auth.NewAuthenticator(auth.WithAPIKeys(keys))
		if err != nil {
			return err
		}
		opts, key = append(opts, server.WithAuthenticator(a)), secret
		if strings.HasSuffix(mode, "apikey-one-stream") { // every Subscribe stream past the first is refused in the tap
			opts = append(opts, server.WithMaxStreamsPerCredential(1))
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	if n, err := strconv.ParseInt(os.Getenv(serveChildHeadroomEnv), 10, 64); err == nil {
		gc, err := serveconfig.StartGCTuner(n)
		if err != nil {
			return err
		}
		defer gc.Close()
	}
	srv, err := server.New(opts...)
	if err != nil {
		return err
	}
	defer srv.Close()
	stopProfiles, err := serveChildRole.Profile(os.Getenv(serveChildProfileEnv), os.Getenv(serveChildMemProfileEnv))
	if err != nil {
		return err
	}
	defer stopProfiles()
	return childproc.ServeLoopback(srv, func(addr net.Addr) error {
		if web {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			go srv.ServeWeb(lis) //nolint:errcheck // ServeLoopback's Close stops it
			fmt.Printf("%s %s %s\n", addr, lis.Addr(), key)
		} else {
			fmt.Printf("%s %s\n", addr, key)
		}
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			spent, err := childproc.Usage()
			if err != nil {
				return err
			}
			fmt.Println(int64(spent.CPU), spent.Mallocs, spent.Bytes)
		}
		return in.Err()
	})
}
