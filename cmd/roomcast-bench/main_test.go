package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/roomcast/roomcast/internal/bench"
	"github.com/roomcast/roomcast/internal/servertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestBenchBinary runs the command as a user does: the built binary, its
// worker a second process of the same binary, the default variants at two
// tiny room sizes, then the small rooms and publish-only scenarios.
func TestBenchBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if runtime.GOOS == "windows" {
		t.Skip("the worker is stopped with a signal")
	}
	// Bounds for a loaded machine, far past what the steps need: at a load
	// of 12, the build and 4 of the 17 trials took all of the 30 s that
	// servertest.Context gives.
	within := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		t.Cleanup(cancel)
		return ctx
	}
	bin := filepath.Join(t.TempDir(), "roomcast-bench")
	if out, err := exec.CommandContext(within(3*time.Minute), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := t.TempDir()
	cmd := exec.CommandContext(within(4*time.Minute), bin, "--quick",
		"--subscribers", "4", "--connections", "2", "--sizes", "2,4", "--paced", "400",
		"--warmup", "100ms", "--duration", "400ms",
		"--out", out, "--cpuprofile", filepath.Join(out, "cpu.pprof"), "--client-cpuprofile", filepath.Join(out, "client.pprof"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 15 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("roomcast-bench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "ok: every subscriber got every message in order") {
		t.Errorf("stdout does not say the run passed:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "bench: [17/17]") {
		t.Errorf("no progress on stderr:\n%s", stderr.String())
	}

	b, err := os.ReadFile(filepath.Join(out, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Schema != bench.Schema || !rep.OK || !rep.Host.WorkerProcess || !rep.Host.ServerInProcess {
		t.Errorf("report: schema %q, ok %v, host %+v", rep.Schema, rep.OK, rep.Host)
	}
	if rep.Config.DurationS != 0.4 || rep.Config.Subscribers != 4 || !slices.Equal(rep.Config.Sizes, []int{2, 4}) {
		t.Errorf("flags given with --quick were not applied: %+v", rep.Config)
	}
	// 3 variants × 2 sizes × 2 kinds, 2 of small rooms, 3 publish-only.
	if len(rep.Trials) != 17 || len(rep.Points) != 17 {
		t.Errorf("%d trials and %d points, want 17 each", len(rep.Trials), len(rep.Points))
	}
	if len(rep.ServerDiffers) == 0 || !strings.Contains(stdout.String(), "1 × 4 over 2 connections") {
		t.Errorf("the report does not state the shapes as run or the server's differences from serve:\n%s", stdout.String())
	}
	for _, tr := range rep.Trials {
		if !tr.OK || tr.Delivered == 0 || tr.Latency == nil || tr.Latency.Count == 0 || tr.Server == nil || tr.Server.NsPerDelivery <= 0 {
			t.Errorf("trial %s %s %d: %+v", tr.Variant, tr.Kind, tr.RoomSize, tr)
		}
	}
	for _, v := range bench.DefaultVariants {
		if fi, err := os.Stat(filepath.Join(out, "cpu-"+v+".pprof")); err != nil || fi.Size() == 0 {
			t.Errorf("no CPU profile for %s: %v", v, err)
		}
		if fi, err := os.Stat(filepath.Join(out, "client-"+v+".pprof")); err != nil || fi.Size() == 0 {
			t.Errorf("no client CPU profile for %s: %v", v, err)
		}
	}
	if svg, err := os.ReadFile(filepath.Join(out, "bench.svg")); err != nil || !strings.Contains(string(svg), "</svg>") {
		t.Errorf("bench.svg: %v", err)
	}
}

func TestBenchFlags(t *testing.T) {
	parse := func(args ...string) bench.Config {
		t.Helper()
		cfg, quick := bench.DefaultConfig(), false
		fs := flag.NewFlagSet("bench", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		benchFlags(fs, &cfg, &quick)
		if err := fs.Parse(args); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		return resolveBenchConfig(fs, cfg, quick)
	}

	if got, want := parse(), bench.DefaultConfig(); got.Subscribers != want.Subscribers || got.Duration != want.Duration || !slices.Equal(got.Variants, bench.DefaultVariants) ||
		got.Publish != bench.PublishUnary || !got.SmallRooms || !got.PublishOnly {
		t.Errorf("defaults: %+v", got)
	}
	q := parse("--quick", "--subscribers", "7", "--variants", "nats,roomcast")
	if want := bench.QuickConfig(); q.Subscribers != 7 || q.Duration != want.Duration || q.Connections != want.Connections || !slices.Equal(q.Variants, []string{"nats", "roomcast"}) {
		t.Errorf("--quick with overrides: %+v", q)
	}
	if s := parse("--sizes", "10, 100,1000", "--duration", "3s"); !slices.Equal(s.Sizes, []int{10, 100, 1000}) || s.Duration != 3*time.Second {
		t.Errorf("--sizes: %+v", s)
	}
	if p := parse("--publish", "stream", "--small-rooms=false", "--publish-only=false"); p.Publish != bench.PublishStream || p.SmallRooms || p.PublishOnly {
		t.Errorf("--publish stream, no extra scenario: %+v", p)
	}
	if r := parse("--server", "127.0.0.1:1"); !slices.Equal(r.Variants, []string{bench.VariantRoomcast}) {
		t.Errorf("--server measures %v, want roomcast alone", r.Variants)
	}
}

func TestBenchUsage(t *testing.T) {
	ctx := servertest.Context(t)
	runArgs := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(ctx, args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--variants", "kafka"}, `unknown variant "kafka"`},
		{[]string{"--sizes", "10,x"}, `room size "x"`},
		{[]string{"--publish", "batch"}, `unknown publish mode "batch"`},
		{[]string{"--payload", "8"}, "payload must be"},
		{[]string{"--rooms", "4", "--subscribers", "2"}, "every room needs a subscriber"},
		{[]string{"--server", "127.0.0.1:1", "--variants", "nats"}, "needs an in-process server"},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
		{[]string{"--no-such-flag"}, "no-such-flag"},
	} {
		code, stdout, stderr := runArgs(tc.args...)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, tc.says) || !strings.Contains(stderr, `Run "roomcast-bench --help"`) {
			t.Errorf("%q: exit %d, stdout %q, stderr:\n%s\nwant exit 2, %q and where to find help", tc.args, code, stdout, stderr, tc.says)
		}
	}
	code, stdout, stderr := runArgs("--help")
	if code != exitOK || stderr != "" || !strings.HasPrefix(stdout, "Usage: roomcast-bench [flags]") {
		t.Errorf("--help: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	benchFlags(fs, new(bench.Config), new(bool))
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(stdout, "--"+f.Name+" ") && !strings.Contains(stdout, "--"+f.Name+"\n") {
			t.Errorf("--help does not describe --%s", f.Name)
		}
	})
	if strings.Contains(stdout, workerArg) {
		t.Errorf("--help mentions the worker:\n%s", stdout)
	}
}
