// Command attack reproduces, on loopback, the attacks of issue #13 ("Stay
// up under abuse") against a real "roomcast serve", and prints how a
// well-behaved subscriber fared during each one against its baseline in
// the same run. It is run by hand (go run ./internal/attack), not in CI; its
// own test runs two cheap attacks in quick mode so that it keeps working.
//
// It builds cmd/roomcast into a temporary directory (or takes --roomcast),
// makes API keys with "roomcast apikey new", and for each attack starts a
// fresh "roomcast serve" with its default flags but --listen and
// --metrics-listen on free ports of 127.0.0.1 and --api-keys-file, so
// attacks run with a credential and without. In each, a bystander (one
// publisher and one subscriber of the client package, with a key of their
// own) publishes a timestamped message every 4 ms and measures when it is
// delivered: first for the baseline, then while the attack runs in a child
// process (this program again), which stops by itself after --duration.
// Every address it connects to is the server's, on 127.0.0.1. With
// --runs it runs the attacks several times and prints the median run with
// every run's figures; with --against it alternates two builds, attack by
// attack, and prints them side by side (runs.go, summary.go).
//
// The attacker lives in another process so that its CPU and garbage do
// not count against the bystander's latency, pinned to one core (see
// pin.go) as if it were another machine, and with --layout isolated the
// server and the bystander to the other cores; the server is another
// process again, whose CPU time and peak resident memory come from /proc.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// childEnv holds a child's attack, as JSON; set, the program is a child.
const childEnv = "ROOMCAST_ATTACK_CHILD"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(ctx, spec, os.Stdout))
	}
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// config is what one invocation does.
type config struct {
	duration, baseline time.Duration
	attacks            []*attack
	runs               int      // how many times to run the attacks against each build
	roomcast           string   // a built roomcast binary; "" to build one
	against            string   // a second roomcast binary to alternate with the first; "" for none
	serveArgs          []string // flags for every serve, after the attack's own
	jsonOut            string   // where to write the results as JSON; "" for none
	pin                pinning  // where the attacker, the server and the bystander run
	web                bool     // the attacker calls the web listener rather than the gRPC port
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("attack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := &config{}
	quick := fs.Bool("quick", false, "1 s per attack after a 0.5 s baseline, instead of --duration and --baseline")
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "run each attack for `D`")
	fs.DurationVar(&cfg.baseline, "baseline", 2*time.Second, "measure the bystander alone for `D` before each attack")
	names := fs.String("attacks", "", "run only these attacks (comma-separated `NAMES`: "+strings.Join(attackNames(), ",")+"); all by default")
	fs.StringVar(&cfg.roomcast, "roomcast", "", "use the roomcast binary at `PATH` instead of building cmd/roomcast")
	fs.IntVar(&cfg.runs, "runs", 1, "run the attacks `N` times, and print the median run's table and every run's p99 ratios and attack p99s")
	fs.StringVar(&cfg.against, "against", "", "also run each attack against the roomcast binary at `PATH`, alternating with the first build (A, B, A, B, ...), and compare them")
	fs.StringVar(&cfg.jsonOut, "json", "", "also write the results as JSON to `FILE`")
	layout := fs.String("layout", layoutShared, "where the processes run (`L`): shared pins the attacker to the last core this process may use; isolated pins the server and the bystander to the others as well; none pins nothing")
	port := fs.String("port", "grpc", "the attacker's target (`P`): grpc, the gRPC port; or web, the web listener (--http-listen), which serve runs by default; the bystander stays on the gRPC port")
	serveArgs := fs.String("serve-args", "", "give every serve these `FLAGS` too (space-separated), such as \"--stream-reset-rate 0\" to see an attack without a defence")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./internal/attack [flags]\n\nRuns the attacks of issue #13 against roomcast serve on 127.0.0.1 and prints a table.\n\n")
		fs.PrintDefaults()
	}
	err := fs.Parse(args)
	if err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *quick {
		cfg.duration, cfg.baseline = time.Second, 500*time.Millisecond
	}
	if cfg.duration <= 0 || cfg.baseline <= 0 {
		return nil, errors.New("--duration and --baseline must be positive")
	}
	if cfg.runs < 1 {
		return nil, errors.New("--runs must be at least 1")
	}
	cfg.serveArgs = strings.Fields(*serveArgs)
	switch *port {
	case "grpc":
	case "web":
		cfg.web = true
	default:
		return nil, fmt.Errorf("--port is grpc or web, not %q", *port)
	}
	if cfg.pin, err = newPinning(*layout); err != nil {
		return nil, err
	}
	cfg.attacks = attacks
	if *names != "" {
		cfg.attacks = nil
		for _, n := range strings.Split(*names, ",") {
			i := slices.IndexFunc(attacks, func(a *attack) bool { return a.name == n })
			if i < 0 {
				return nil, fmt.Errorf("no attack %q; the attacks are %s", n, strings.Join(attackNames(), ", "))
			}
			cfg.attacks = append(cfg.attacks, attacks[i])
		}
	}
	return cfg, nil
}

// run runs the attacks args ask for and prints the table on stdout (or,
// with --runs or --against, the median run's and the runs' summary; see
// summary.go), progress on stderr. It returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		fmt.Fprintf(stderr, "attack: %v\n", err)
		return 2
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "attack: "+format+"\n", a...) }
	first, err := prepare(ctx, cfg.roomcast, logf)
	if err != nil {
		logf("%v", err)
		return 1
	}
	defer first.close()
	envs, builds := []*env{first}, []string{cfg.roomcast}
	if cfg.roomcast == "" {
		wd, _ := os.Getwd()
		builds[0] = "cmd/roomcast built in " + wd
	}
	if cfg.against != "" {
		other, err := prepare(ctx, cfg.against, logf)
		if err != nil {
			logf("--against: %v", err)
			return 1
		}
		defer other.close()
		envs, builds = append(envs, other), append(builds, cfg.against)
	}
	unpin, err := cfg.pin.pinSelf() // after the build, which may use every core
	if err != nil {
		logf("%v", err)
		return 1
	}
	defer unpin()

	runs := runRounds(ctx, cfg, builds, func(b int, a *attack) *result {
		return measure(ctx, envs[b], a, cfg, logf)
	}, logf)
	single := writeReport(stdout, runs, builds, cfg)
	if cfg.jsonOut != "" {
		if err := writeJSON(cfg.jsonOut, runs, single); err != nil {
			logf("%v", err)
			return 1
		}
	}
	if ctx.Err() != nil {
		return 1
	}
	return 0
}
