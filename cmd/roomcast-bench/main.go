// Command roomcast-bench measures roomcast's fan-out side by side with the
// same server encoding each message once per subscriber and with NATS core:
//
//	roomcast-bench [flags]
//
// Run "roomcast-bench --help" for every flag. It is a command of its own,
// rather than a subcommand of roomcast, so that the roomcast binary (and the
// first "go run ./cmd/roomcast serve") neither compiles nor links
// nats-server and nats.go, which only the comparison needs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/roomcast/roomcast/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the process
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes, as roomcast's.
const (
	exitOK    = 0
	exitFail  = 1 // the run failed: an error, or a loss, reordering or cut-off
	exitUsage = 2 // a bad flag or argument
)

// workerArg, as the only argument, makes the process the worker that hosts
// a run's publishers and subscribers, driven by its parent over stdin and
// stdout. It is not for use by hand.
const workerArg = "worker"

const detail = `
Measure roomcast's fan-out side by side with the same server encoding each
message once per subscriber (encode-each) and with NATS core (an embedded
nats-server), on this machine with one harness.

This process runs the server under test on loopback, so that its CPU time
and memory are the server's; the publishers and subscribers run in a second
process (this binary again). Subscribers are spread over --connections and
--rooms; each checks that it gets every message of its room in order, and
publishers stay at most --window messages ahead of a room's slowest
subscriber, so a saturated server is measured without cutting anyone off.
Any loss, reordering or cut-off fails the run (exit status 1).

The server under test is built as "roomcast serve" builds it with its
defaults (metrics and the access log on); the report lists what differs,
such as --publish-rate 0. roomcast subscribers use the client package.

The default matrix: the fanout (each room size of --sizes, or --subscribers
over --rooms) at saturation (or at --rate) and, with --paced, at that many
deliveries per second; rooms of 10 at saturation with streaming publishers
(--small-rooms); publishing alone, unary and streaming (--publish-only);
NATS beside each. Shapes are reported as run: rooms × subscribers per room
over connections. It reports published and delivered messages/s, MB/s,
publish-to-delivery latency (p50, p99, p99.9), server CPU per delivery and
per publish, and server memory per connection and per subscriber stream,
as heap + stacks and as RSS (idle, after a GC, and peak while busy):
medians of --reps repetitions on stdout, progress on stderr, and with
--out, bench.json and a chart, bench.svg. --quick is a run of well under
a minute, for CI.`

// run runs the command line args (without the program name) and returns the
// exit code. ctx is done when the process is asked to stop; the run then
// ends with exitOK.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == workerArg {
		if err := bench.ServeWorker(ctx, os.Stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "roomcast-bench worker: %v\n", err)
			return exitFail
		}
		return exitOK
	}
	fs := flag.NewFlagSet("roomcast-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	cfg, quick := bench.DefaultConfig(), false
	benchFlags(fs, &cfg, &quick)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeUsage(stdout, fs)
			return exitOK
		}
		fmt.Fprintln(stderr, `Run "roomcast-bench --help" for usage.`) // flag printed the error
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "roomcast-bench: unexpected arguments %q: it takes flags only\nRun \"roomcast-bench --help\" for usage.\n", fs.Args())
		return exitUsage
	}
	return runBench(ctx, resolveBenchConfig(fs, cfg, quick), stdout, stderr)
}

// writeUsage describes the command and every one of its flags.
func writeUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: roomcast-bench [flags]\n\n%s\n\nFlags:\n", strings.TrimSpace(detail))
	fs.VisitAll(func(f *flag.Flag) {
		placeholder, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if placeholder != "" {
			fmt.Fprintf(w, " %s", placeholder)
		}
		fmt.Fprintf(w, "\n        %s", usage)
		if f.DefValue != "" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
	fmt.Fprintf(w, "  --help\n        show this help\n")
}

// benchFlags defines the flags on fs, bound to cfg and quick.
func benchFlags(fs *flag.FlagSet, cfg *bench.Config, quick *bool) {
	fs.BoolVar(quick, "quick", false,
		"a run of well under a minute, for CI: 100 subscribers over 10 connections, room sizes 10 and 100 (10 × 10 and 1 × 100), 1s per trial, paced at 20000 deliveries/s, then 10 × 10 with streaming publishes and publish-only; flags given as well override it")
	fs.StringVar(&cfg.Server, "server", cfg.Server,
		"measure the roomcast server at `ADDR` instead of in-process servers: only the roomcast variant, and no server CPU or memory")
	fs.IntVar(&cfg.Subscribers, "subscribers", cfg.Subscribers, "`N` subscriber streams, when --sizes is not given")
	fs.IntVar(&cfg.Connections, "connections", cfg.Connections, "spread the subscribers over `N` client connections")
	fs.IntVar(&cfg.Rooms, "rooms", cfg.Rooms, "spread the subscribers over `N` rooms (one subject each for NATS), when --sizes is not given")
	fs.IntVar(&cfg.Publishers, "publishers", cfg.Publishers, "`N` publishers, each on a connection of its own")
	fs.IntVar(&cfg.Payload, "payload", cfg.Payload, "payload size in `BYTES` (at least 20)")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "publish `N` messages per second over all publishers; 0 publishes as fast as the subscribers keep up (saturation)")
	fs.Float64Var(&cfg.Paced, "paced", cfg.Paced, "also measure every point paced at `N` deliveries per second (messages/s times room size), for latency; 0 for none")
	fs.IntVar(&cfg.Window, "window", cfg.Window, "flow control: publishers stay at most `N` messages ahead of a room's slowest subscriber (less for large payloads)")
	fs.IntVar(&cfg.StreamWindow, "stream-window", cfg.StreamWindow,
		"give each roomcast subscriber stream a fixed HTTP/2 flow-control window of `BYTES` (16 times that per connection), which turns off grpc-go's bandwidth-estimation pings; 0 keeps grpc-go's dynamic window")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "publish for `DURATION` before measuring")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measure each trial for `DURATION`")
	fs.IntVar(&cfg.Reps, "reps", cfg.Reps, "repeat every trial `N` times; the report gives medians")
	fs.Var((*variantsFlag)(&cfg.Variants), "variants",
		"measure these `VARIANTS`, comma-separated: roomcast, encode-each, nats; and, measured only when named, watch (roomcast with its subscribers on Connect over HTTP/2) and the extra roomcast-rawdecode (subscribers on the generated stubs with a hand-written decoder; no headline figure)")
	fs.Var((*sizesFlag)(&cfg.Sizes), "sizes",
		"sweep these room `SIZES` (subscribers per room, comma-separated): at each, --subscribers spread over subscribers/size rooms (one room when size is larger), over --connections; 10 with the defaults is 100 rooms × 10 over 50 connections")
	fs.StringVar(&cfg.Publish, "publish", cfg.Publish,
		"how the fanout's roomcast publishers publish: `MODE` unary (Client.Publish, 16 in flight) or stream (a client.Publisher on PublishStream, its window in flight)")
	fs.BoolVar(&cfg.SmallRooms, "small-rooms", cfg.SmallRooms,
		"also measure rooms of 10 (--subscribers/10 rooms over --connections) at saturation with streaming publishers, roomcast and NATS")
	fs.BoolVar(&cfg.PublishOnly, "publish-only", cfg.PublishOnly,
		"also measure publishing alone: one subscriber, 64-byte payloads, at saturation, roomcast unary and streaming, and NATS")
	fs.StringVar(&cfg.Engine, "engine", cfg.Engine,
		"keep the roomcast variants' rooms in `ENGINES`: memory (one server), redis (--nodes servers sharing a Redis), or memory,redis to measure both in one run, interleaved, with redis's ratios to memory")
	fs.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "with --engine redis, run `N` roomcast servers in this process, one broker; subscriber connection i goes to node i mod N")
	fs.StringVar(&cfg.PublishNodes, "publish-nodes", cfg.PublishNodes, "with --nodes, publish to node `NODE` (an index), or all: publisher p to node p mod N")
	fs.StringVar(&cfg.RedisAddr, "redis-addr", cfg.RedisAddr,
		"with --engine redis, use the Redis at `HOST:PORT[,HOST:PORT...]` (one per shard) instead of starting redis-server; the run's keys are deleted at its end, and its CPU counts whatever else that Redis does")
	fs.IntVar(&cfg.RedisShards, "redis-shards", cfg.RedisShards, "with --engine redis and no --redis-addr, start `N` redis-servers: rooms are spread over them by name")
	fs.StringVar(&cfg.Out, "out", cfg.Out, "write bench.json and bench.svg in `DIR`")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", cfg.CPUProfile,
		"write a CPU profile of the server process to `FILE` (FILE-VARIANT with several variants), taken during the first trial at the largest room size")
	fs.StringVar(&cfg.WorkerCPUProfile, "client-cpuprofile", cfg.WorkerCPUProfile,
		"write a CPU profile of the client process (the publishers and subscribers, whose CPU the report calls client CPU) to `FILE` (FILE-VARIANT with several variants), during the trials --cpuprofile profiles")
}

// resolveBenchConfig returns the configuration the flags ask for: with
// --quick, QuickConfig with the flags given applied to it.
func resolveBenchConfig(fs *flag.FlagSet, cfg bench.Config, quick bool) bench.Config {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if quick {
		q := bench.QuickConfig()
		again := flag.NewFlagSet("", flag.ContinueOnError)
		again.SetOutput(io.Discard)
		benchFlags(again, &q, new(bool))
		fs.Visit(func(f *flag.Flag) { again.Set(f.Name, f.Value.String()) }) // parsed once already
		cfg = q
	}
	if cfg.Server != "" && !set["variants"] {
		cfg.Variants = []string{bench.VariantRoomcast}
	}
	return cfg
}

func runBench(ctx context.Context, cfg bench.Config, stdout, stderr io.Writer) int {
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "roomcast-bench: %v\nRun \"roomcast-bench --help\" for usage.\n", err)
		return exitUsage
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "roomcast-bench: finding this program to run its worker: %v\n", err)
		return exitFail
	}
	cfg.WorkerCommand = []string{exe, workerArg}
	_, err = bench.Run(ctx, cfg, stdout, stderr)
	switch {
	case err == nil:
		return exitOK
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "roomcast-bench: stopped")
		return exitOK
	case errors.Is(err, bench.ErrFailed):
		fmt.Fprintf(stderr, "roomcast-bench: FAILED: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stderr, "roomcast-bench: %v\n", err)
	return exitFail
}

// variantsFlag is a comma-separated list of variants.
type variantsFlag []string

func (v *variantsFlag) String() string { return strings.Join(*v, ",") }

func (v *variantsFlag) Set(s string) error {
	list, err := bench.ParseVariants(s)
	if err != nil {
		return err
	}
	*v = list
	return nil
}

// sizesFlag is a comma-separated list of room sizes.
type sizesFlag []int

func (v *sizesFlag) String() string {
	s := make([]string, len(*v))
	for i, n := range *v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func (v *sizesFlag) Set(s string) error {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return fmt.Errorf("room size %q is not a positive integer", f)
		}
		out = append(out, n)
	}
	*v = out
	return nil
}
