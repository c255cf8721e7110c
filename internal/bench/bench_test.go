package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tinyConfig is a run of a few seconds: every variant at two tiny room
// sizes, at saturation and paced, with the worker in-process.
func tinyConfig(t *testing.T) Config {
	cfg := QuickConfig()
	cfg.Subscribers, cfg.Connections, cfg.Rooms, cfg.Publishers = 6, 2, 2, 2
	cfg.Sizes = []int{1, 3}
	cfg.Paced = 600
	cfg.Warmup = 100 * time.Millisecond
	cfg.Duration = 600 * time.Millisecond
	cfg.Out = t.TempDir()
	return cfg
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRunTiny(t *testing.T) {
	cfg := tinyConfig(t)
	var stdout, stderr bytes.Buffer
	rep, err := Run(testCtx(t), cfg, &stdout, &stderr)
	if err != nil {
		t.Fatalf("Run: %v\nstderr:\n%s", err, stderr.String())
	}
	t.Logf("stdout:\n%s", stdout.String())
	b, err := os.ReadFile(filepath.Join(cfg.Out, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Schema != Schema || !got.OK || len(got.Trials) != len(rep.Trials) {
		t.Fatalf("report: schema %q ok %v, %d trials", got.Schema, got.OK, len(got.Trials))
	}
	if want := 3 * 2 * 2; len(got.Trials) != want {
		t.Errorf("%d trials, want %d", len(got.Trials), want)
	}
	for _, tr := range got.Trials {
		if !tr.OK || tr.Delivered == 0 || tr.DeliveredPerSec <= 0 || tr.Seconds <= 0 || tr.Published == 0 {
			t.Errorf("trial %+v", tr)
		}
		if tr.Latency == nil || tr.Latency.Count == 0 || tr.Latency.P99US <= 0 || tr.Latency.P50US > tr.Latency.P99US {
			t.Errorf("%s %s %d: latency %+v", tr.Variant, tr.Kind, tr.RoomSize, tr.Latency)
		}
		if tr.Server == nil || tr.Server.CPUSeconds <= 0 || tr.Server.NsPerDelivery <= 0 || tr.Server.Memory.EmptyBytes == 0 {
			t.Errorf("%s %s %d: server %+v", tr.Variant, tr.Kind, tr.RoomSize, tr.Server)
		}
		if tr.Subscribers != tr.RoomSize*cfg.Rooms {
			t.Errorf("%s: %d subscribers at room size %d", tr.Variant, tr.Subscribers, tr.RoomSize)
		}
	}
	if len(got.Points) != 3*2*2 {
		t.Errorf("%d points", len(got.Points))
	}
	if len(got.Ratios) == 0 {
		t.Error("no ratios")
	}
	svg, err := os.ReadFile(filepath.Join(cfg.Out, "bench.svg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "</svg>", VariantRoomcast, VariantEncodeEach, VariantNATS, "subscribers per room", "p99 latency"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("the chart lacks %q", want)
		}
	}
	if !strings.Contains(stderr.String(), "[12/12]") {
		t.Errorf("no progress on stderr:\n%s", stderr.String())
	}
}

func TestRunFailsOnLostMessage(t *testing.T) {
	for _, v := range AllVariants {
		t.Run(v, func(t *testing.T) {
			cfg := tinyConfig(t)
			cfg.Variants, cfg.Sizes, cfg.Paced = []string{v}, []int{3}, 0
			cfg.hooks.drop = func(sub int, n uint64) bool { return sub == 1 && n == 5 }
			var stdout, stderr bytes.Buffer
			rep, err := Run(testCtx(t), cfg, &stdout, &stderr)
			if !errors.Is(err, ErrFailed) {
				t.Fatalf("Run: %v, want ErrFailed\nstderr:\n%s", err, stderr.String())
			}
			t.Logf("error: %v", err)
			if rep == nil || rep.OK || !strings.Contains(err.Error(), "lost") {
				t.Errorf("error %q; report ok %v", err, rep != nil && rep.OK)
			}
			if !strings.Contains(stdout.String(), "FAILED") {
				t.Errorf("stdout does not say it failed:\n%s", stdout.String())
			}
		})
	}
}

// TestRunRemoteServer measures a server the run did not start: the clients'
// figures only.
func TestRunRemoteServer(t *testing.T) {
	srv, err := startRoomcast(false, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	cfg := tinyConfig(t)
	cfg.Server, cfg.Variants, cfg.Sizes, cfg.Out = srv.addr(), []string{VariantRoomcast}, []int{3}, ""
	var stdout, stderr bytes.Buffer
	rep, err := Run(testCtx(t), cfg, &stdout, &stderr)
	if err != nil {
		t.Fatalf("Run: %v\nstderr:\n%s", err, stderr.String())
	}
	if rep.Host.ServerInProcess || len(rep.Trials) != 2 {
		t.Fatalf("host %+v, %d trials", rep.Host, len(rep.Trials))
	}
	for _, tr := range rep.Trials {
		if !tr.OK || tr.Server != nil || tr.Delivered == 0 {
			t.Errorf("trial %+v", tr)
		}
	}
	if cfg.Variants = []string{VariantNATS}; cfg.Validate() == nil {
		t.Error("NATS against a roomcast server was accepted")
	}
}

func TestRunWithFixedStreamWindow(t *testing.T) {
	cfg := tinyConfig(t)
	cfg.Variants, cfg.Sizes, cfg.Paced = []string{VariantRoomcast}, []int{3}, 0
	cfg.StreamWindow = 64 << 10
	var stdout, stderr bytes.Buffer
	rep, err := Run(testCtx(t), cfg, &stdout, &stderr)
	if err != nil {
		t.Fatalf("Run: %v\nstderr:\n%s", err, stderr.String())
	}
	if !rep.OK || rep.Config.StreamWindow != cfg.StreamWindow || len(rep.Trials) != 1 || rep.Trials[0].Delivered == 0 {
		t.Errorf("report: ok %v, stream window %d, trials %+v", rep.OK, rep.Config.StreamWindow, rep.Trials)
	}
	cfg.StreamWindow = 1000
	if _, err := Run(testCtx(t), cfg, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "stream window") {
		t.Errorf("a 1000-byte stream window: %v, want it refused", err)
	}
}
