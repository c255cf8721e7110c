package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/roomcast/roomcast/internal/redisproc"
	"github.com/roomcast/roomcast/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tinyConfig is a run of a few seconds: the default variants at two tiny
// room sizes (6 rooms of 1 and 2 rooms of 3 over 2 connections), at
// saturation and paced, with the worker in-process; no extra scenario.
func tinyConfig(t *testing.T) Config {
	cfg := QuickConfig()
	cfg.Subscribers, cfg.Connections, cfg.Rooms, cfg.Publishers = 6, 2, 1, 2
	cfg.Sizes = []int{1, 3}
	cfg.SmallRooms, cfg.PublishOnly = false, false
	cfg.Paced = 600
	cfg.Warmup = 50 * time.Millisecond
	cfg.Duration = 400 * time.Millisecond
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
		if tr.Subscribers != 6 || tr.Rooms != 6/tr.RoomSize || tr.Connections != 2 || tr.Scenario != ScenarioFanout ||
			tr.Shape != fmt.Sprintf("%d × %d over 2 connections", 6/tr.RoomSize, tr.RoomSize) {
			t.Errorf("%s: %d subscribers in %d rooms of %d over %d connections, labelled %s %q", tr.Variant, tr.Subscribers, tr.Rooms, tr.RoomSize, tr.Connections, tr.Scenario, tr.Shape)
		}
		if w := tr.Server.Writers; (w == nil || w.SendsPerDelivery <= 0 || w.PassesPerDelivery <= 0) != (tr.Variant == VariantNATS) {
			t.Errorf("%s: writer counts %+v", tr.Variant, w)
		}
		if m := tr.Server.Memory; m.EmptyRSSBytes == 0 || m.SubscribedRSSBytes == 0 || m.BusyPeakRSSBytes == 0 {
			t.Errorf("%s: no RSS: %+v", tr.Variant, m)
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
	for _, want := range []string{"<svg", "</svg>", VariantRoomcast, VariantEncodeEach, VariantNATS, "subscribers per room", "p99 latency", "6×1/2", "2×3/2"} {
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
	srv, err := startRoomcast(false, 1, 1, 1, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	cfg := tinyConfig(t)
	cfg.Server, cfg.Variants, cfg.Sizes, cfg.Out = srv.addrs()[0], []string{VariantRoomcast}, []int{3}, ""
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

// TestRunExtraScenarios runs the small rooms and publish-only scenarios
// beside a fanout, roomcast and NATS: each labelled as run, NATS beside
// each, publish-only with unary and streaming publishers and its figures
// per publish, and the server's differences from serve's defaults stated.
func TestRunExtraScenarios(t *testing.T) {
	cfg := tinyConfig(t)
	cfg.Variants, cfg.Sizes, cfg.Paced = []string{VariantRoomcast, VariantNATS}, nil, 0
	cfg.Subscribers, cfg.Connections, cfg.Publishers = 20, 4, 1
	cfg.SmallRooms, cfg.PublishOnly = true, true
	// Publishers run at most Window messages ahead of the subscriber, in
	// steps of Window/4. At 256, a loaded machine's subscriber that took
	// fewer than 64 messages in the 400 ms window let no publish through
	// (publish-only stream: 36 delivered, 0 published): no figure per
	// publish to check. At 8, every 2 messages it takes let 2 more in.
	cfg.Window = 8
	var stdout, stderr bytes.Buffer
	rep, err := Run(testCtx(t), cfg, &stdout, &stderr)
	if err != nil {
		t.Fatalf("Run: %v\nstderr:\n%s", err, stderr.String())
	}
	t.Logf("stdout:\n%s", stdout.String())
	type trial struct{ scenario, shape, variant, publish string }
	var got []trial
	for _, tr := range rep.Trials {
		got = append(got, trial{tr.Scenario, tr.Shape, tr.Variant, tr.Publish})
		if !tr.OK || tr.Server == nil || tr.Server.NsPerPublish <= 0 || tr.PublishedPerSec <= 0 {
			t.Errorf("trial %+v, server %+v", tr, tr.Server)
		}
	}
	want := []trial{
		{ScenarioFanout, "1 × 20 over 4 connections", VariantRoomcast, PublishUnary},
		{ScenarioFanout, "1 × 20 over 4 connections", VariantNATS, ""},
		{ScenarioSmallRooms, "2 × 10 over 4 connections", VariantRoomcast, PublishStream},
		{ScenarioSmallRooms, "2 × 10 over 4 connections", VariantNATS, ""},
		{ScenarioPublishOnly, "1 × 1 over 1 connection", VariantRoomcast, PublishUnary},
		{ScenarioPublishOnly, "1 × 1 over 1 connection", VariantRoomcast, PublishStream},
		{ScenarioPublishOnly, "1 × 1 over 1 connection", VariantNATS, ""},
	}
	if !slices.Equal(got, want) {
		t.Errorf("trials\n%v\nwant\n%v", got, want)
	}
	for _, tr := range rep.Trials {
		if tr.Scenario == ScenarioPublishOnly && tr.PayloadBytes != PublishOnlyPayload {
			t.Errorf("publish-only with %d-byte payloads", tr.PayloadBytes)
		}
	}
	ratio := map[string]bool{}
	for _, r := range rep.Ratios {
		ratio[r.Scenario+" "+r.Metric+" "+r.Of+" vs "+r.Baseline] = true
	}
	for _, w := range []string{
		"publish-only cpu_ns_per_publish roomcast (unary publish) vs nats",
		"publish-only published_per_sec roomcast (stream publish) vs nats",
		"small-rooms cpu_ns_per_delivery roomcast (stream publish) vs nats",
	} {
		if !ratio[w] {
			t.Errorf("no ratio %q in %v", w, ratio)
		}
	}
	if !slices.ContainsFunc(rep.ServerDiffers, func(s string) bool { return strings.HasPrefix(s, "--publish-rate 0") }) {
		t.Errorf("the report does not say the publish rate differs: %q", rep.ServerDiffers)
	}
	for _, w := range []string{"2 × 10 over 4 connections", "roomcast (stream publish)", "--publish-rate 0", "RSS B/stream"} {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("stdout lacks %q", w)
		}
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

// redisConfig is tinyConfig on two nodes sharing a Redis of the run's own:
// subscribers on both nodes, publishers on node 0.
func redisConfig(t *testing.T) Config {
	redistest.Require(t)
	cfg := tinyConfig(t)
	cfg.Variants, cfg.Sizes, cfg.Paced, cfg.Out = []string{VariantRoomcast}, []int{3}, 0, ""
	cfg.Engine, cfg.Nodes = EngineRedis, 2
	return cfg
}

// TestRunRedis is the quick run with --engine memory,redis --nodes 2, so
// that the Redis path cannot rot: the same point in memory and on two
// nodes on a redis-server the run starts, with per-node CPU, Redis's CPU,
// latency across nodes and the ratios of Redis to memory. The run's
// redis-server is gone after it. Like every test here that needs Redis, it
// skips without redis-server and fails instead when CI is set.
func TestRunRedis(t *testing.T) {
	cfg := redisConfig(t)
	cfg.Engine = "redis, memory"
	var stdout, stderr bytes.Buffer
	rep, err := Run(testCtx(t), cfg, &stdout, &stderr)
	if err != nil {
		t.Fatalf("Run: %v\nstderr:\n%s", err, stderr.String())
	}
	t.Logf("stdout:\n%s", stdout.String())
	if rep.Redis == nil || !rep.Redis.Started || rep.Redis.Version == "" || len(rep.Redis.Addrs) != 1 || !strings.HasPrefix(rep.Redis.Prefix, "rcbench.") {
		t.Fatalf("redis %+v", rep.Redis)
	}
	if redisproc.Ping(rep.Redis.Addrs[0]) == nil {
		t.Error("the run's redis-server still answers after the run")
	}
	if !slices.Equal(rep.Config.Engines, []string{EngineMemory, EngineRedis}) || len(rep.Trials) != 2 {
		t.Fatalf("engines %v, %d trials", rep.Config.Engines, len(rep.Trials))
	}
	for _, tr := range rep.Trials {
		c := tr.Cluster
		if !tr.OK || c == nil || c.CoresPerNode <= 0 || tr.PublishedPerSec <= 0 || c.PublishNode != "0" {
			t.Fatalf("%s trial %+v, cluster %+v", tr.Engine, tr, c)
		}
		switch tr.Engine {
		case EngineMemory:
			if c.Nodes != 1 || c.Redis != nil || c.CrossNode != nil {
				t.Errorf("memory: cluster %+v", c)
			}
		case EngineRedis:
			if c.Nodes != 2 || c.Redis == nil || c.Redis.CPUSeconds <= 0 || c.Redis.CPUUSPerPublish <= 0 || len(c.Redis.ServerCPUSeconds) != 1 {
				t.Errorf("redis: cluster %+v, redis %+v", c, c.Redis)
			}
			// Subscribers 0 and 2 are on node 0's connection, 1 on node 1's.
			if c.CrossNode == nil || c.CrossNode.Count == 0 || c.SameNode == nil || c.SameNode.Count == 0 ||
				c.CrossNode.Count+c.SameNode.Count != tr.Latency.Count {
				t.Errorf("redis: latency %+v, cross-node %+v, same-node %+v", tr.Latency, c.CrossNode, c.SameNode)
			}
		default:
			t.Errorf("engine %q", tr.Engine)
		}
	}
	var engineRatio bool
	for _, r := range rep.Ratios {
		engineRatio = engineRatio || r.Of == "roomcast/redis (unary publish)" && r.Baseline == "roomcast (unary publish)" && r.Metric == "cpu_ns_per_delivery"
	}
	if !engineRatio {
		t.Errorf("no ratio of redis to memory: %+v", rep.Ratios)
	}
	for _, want := range []string{"redis trials: 2 roomcast nodes", "publishers publish to node 0", "x-node p99", "roomcast/redis (unary publish) vs roomcast (unary publish)"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
}

// TestRunRedisShardsAndAllNodes starts two redis-servers and spreads the
// publishers over both nodes (subscriber i: room i mod 4, its publisher on
// node i mod 2, its connection i mod 3 on node (i mod 3) mod 2).
func TestRunRedisShardsAndAllNodes(t *testing.T) {
	cfg := redisConfig(t)
	cfg.RedisShards, cfg.PublishNodes, cfg.Rooms, cfg.Subscribers, cfg.Connections = 2, PublishAllNodes, 4, 12, 3
	var stdout, stderr bytes.Buffer
	rep, err := Run(testCtx(t), cfg, &stdout, &stderr)
	if err != nil {
		t.Fatalf("Run: %v\nstderr:\n%s", err, stderr.String())
	}
	if len(rep.Redis.Addrs) != 2 || rep.Config.RedisShards != 2 || len(rep.Trials) != 1 {
		t.Fatalf("redis %+v, %d trials", rep.Redis, len(rep.Trials))
	}
	c := rep.Trials[0].Cluster
	if c.PublishNode != PublishAllNodes || len(c.Redis.ServerCPUSeconds) != 2 || c.CrossNode.Count == 0 || c.SameNode.Count == 0 {
		t.Errorf("cluster %+v, redis %+v", c, c.Redis)
	}
	if !strings.Contains(stdout.String(), "publisher p publishes to node p mod nodes") {
		t.Errorf("stdout does not say where publishers publish:\n%s", stdout.String())
	}
}

// TestRunRedisGiven runs on a Redis it did not start: it leaves it
// running, without the run's keys.
func TestRunRedisGiven(t *testing.T) {
	redis := redistest.Start(t)
	cfg := redisConfig(t)
	cfg.RedisAddr = redis.Addr
	var stdout, stderr bytes.Buffer
	rep, err := Run(testCtx(t), cfg, &stdout, &stderr)
	if err != nil {
		t.Fatalf("Run: %v\nstderr:\n%s", err, stderr.String())
	}
	if rep.Redis.Started || !slices.Equal(rep.Redis.Addrs, []string{redis.Addr}) || !rep.OK {
		t.Fatalf("redis %+v, ok %v", rep.Redis, rep.OK)
	}
	if n, err := redis.Do(t, "DBSIZE").AsInt64(); err != nil || n != 0 {
		t.Errorf("DBSIZE %d after the run (%v), want its keys deleted", n, err)
	}
}
