package bench

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/serveconfig"
)

func TestHistogramQuantiles(t *testing.T) {
	var a, b histogram
	for v := int64(1); v <= 100_000; v++ { // 1 ns to 100 µs, uniformly
		if v%2 == 0 {
			a.record(v * 1000)
		} else {
			b.record(v * 1000)
		}
	}
	a.merge(&b)
	for _, q := range []float64{0.5, 0.99, 0.999} {
		want := q * 100_000 * 1000
		if got := a.quantile(q); math.Abs(got-want)/want > 0.02 {
			t.Errorf("quantile %v = %v, want %v within 2%%", q, got, want)
		}
	}
	st := a.stats()
	if st.Count != 100_000 || st.MaxUS != 100_000 || math.Abs(st.MeanUS-50_000.5) > 1 {
		t.Errorf("stats %+v", st)
	}
	for v, last := int64(0), -1; v < 1<<44; v = v*5/4 + 1 {
		i := bucketOf(v)
		if i < last || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d after %d", v, i, last)
		}
		if mid := bucketMid(i); v < 1<<histMaxBits && math.Abs(mid-float64(v)) > float64(v)/30+1 {
			t.Fatalf("bucket %d of %d has middle %v", i, v, mid)
		}
		last = i
	}
	if (&histogram{}).stats().Count != 0 || bucketOf(-5) != 0 {
		t.Error("empty histogram or negative value")
	}
}

// TestFlowControl has a publisher race subscribers that move at random: it
// must never run more than the window ahead of the slowest, and must not
// stall while they keep up.
func TestFlowControl(t *testing.T) {
	const window, total, nsubs = 16, 2000, 5
	r := newRoom(0, "r", window)
	for i := range nsubs {
		r.subs = append(r.subs, &subscriber{id: i, room: r})
	}
	var wg sync.WaitGroup
	for _, s := range r.subs {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(s.id), 1))
			for ack := uint64(0); ack < total; {
				next := min(r.published.Load(), ack+uint64(rng.IntN(7)))
				if next == ack && r.published.Load() == ack {
					runtime.Gosched() // nothing new yet
					continue
				}
				s.ack.Store(next) // before advance, as accept does
				r.advance(ack, next)
				ack = next
			}
		})
	}
	ctx := context.Background()
	for range total {
		if err := r.reserve(ctx); err != nil {
			t.Fatal(err)
		}
		slowest := uint64(math.MaxUint64)
		for _, s := range r.subs {
			slowest = min(slowest, s.ack.Load())
		}
		if p := r.published.Load(); p > slowest+window {
			t.Fatalf("published %d with the slowest subscriber at %d: more than %d ahead", p, slowest, window)
		}
	}
	wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	for r.published.Load() < r.minLevel.Load()*r.chunk+r.window {
		r.reserve(ctx) // fill the window
	}
	if err := r.reserve(ctx); err == nil {
		t.Error("reserve past the window returned without waiting")
	}
}

func TestWireFrame(t *testing.T) {
	payload := make([]byte, 64)
	putHeader(payload, 12345, 7, 2)
	batch := &roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Batch{Batch: &roomcastv1.MessageBatch{
		Messages: []*roomcastv1.Message{
			{Room: "a.r0", Offset: 41, Payload: &roomcastv1.Message_Data{Data: payload}, Headers: map[string]string{"k": "v"}},
			{Room: "a.r1", Offset: 42, Payload: &roomcastv1.Message_Data{Data: payload}},
			{Room: "a.r0", Offset: 43, Payload: &roomcastv1.Message_Text{Text: "hi"}},
		},
		Presence: []*roomcastv1.PresenceEvent{{Room: "a.r0"}},
	}}}
	b, err := proto.Marshal(batch)
	if err != nil {
		t.Fatal(err)
	}
	f := &wireFrame{room: "a.r0"}
	// Split in two buffers, as the transport may hand it over.
	if err := f.parse(mem.BufferSlice{mem.SliceBuffer(b[:10]), mem.SliceBuffer(b[10:])}); err != nil {
		t.Fatal(err)
	}
	want := []received{
		{offset: 41, ts: 12345, seq: 7, pub: 2, size: 64},
		{offset: 42, ts: 12345, seq: 7, pub: 2, size: 64, badHdr: true}, // another room
		{offset: 43, badHdr: true},                                      // text
	}
	if len(f.msgs) != len(want) || f.other != nil {
		t.Fatalf("parsed %+v, other %v", f.msgs, f.other)
	}
	for i := range want {
		if f.msgs[i] != want[i] {
			t.Errorf("message %d: %+v, want %+v", i, f.msgs[i], want[i])
		}
	}
	session, _ := proto.Marshal(&roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Session{Session: &roomcastv1.SessionEvent{SessionId: "s1"}}})
	if err := f.parse(mem.BufferSlice{mem.SliceBuffer(session)}); err != nil || f.other.GetSession().GetSessionId() != "s1" || len(f.msgs) != 0 {
		t.Errorf("session event: %v, %v, %d messages", err, f.other, len(f.msgs))
	}
	if err := f.parse(mem.BufferSlice{mem.SliceBuffer(b[:len(b)-3])}); err == nil {
		t.Error("a truncated batch parsed")
	}
}

func TestChartEdgeCases(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Server, cfg.Variants, cfg.Paced = "127.0.0.1:1", []string{VariantRoomcast}, 0
	r := newReport(cfg)
	r.Trials = []Trial{{Scenario: ScenarioFanout, Publish: PublishUnary, Variant: VariantRoomcast, Kind: KindSaturation, RoomSize: 1000, OK: true, DeliveredPerSec: 5e5, Latency: &LatencyStats{P99US: 900}, Notes: []string{"behind the pace"}}}
	r.finish()
	svg := chartSVG(r)
	if err := wellFormed(svg); err != nil {
		t.Fatalf("%v\n%s", err, svg)
	}
	if !bytes.Contains(svg, []byte("not measured")) || !bytes.Contains(svg, []byte("500k")) {
		t.Errorf("a remote server's CPU panel should say not measured, and the throughput panel show 500k:\n%s", svg)
	}
	if len(r.Ratios) != 0 || r.Points[0].CPUNsPerDelivery != nil {
		t.Errorf("ratios %v, point %+v", r.Ratios, r.Points[0])
	}
	var out bytes.Buffer
	writeText(&out, r)
	if !bytes.Contains(out.Bytes(), []byte("ok:")) || !bytes.Contains(out.Bytes(), []byte("behind the pace")) {
		t.Errorf("text report:\n%s", out.String())
	}
}

func wellFormed(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		if _, err := d.Token(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

func TestNiceScaleAndFormat(t *testing.T) {
	for _, tc := range []struct{ v, top, step float64 }{{0, 1, 0.2}, {7, 8, 2}, {812_000, 1e6, 2e5}, {1262, 1500, 500}} {
		if top, step := niceScale(tc.v); top != tc.top || step != tc.step {
			t.Errorf("niceScale(%v) = %v, %v; want %v, %v", tc.v, top, step, tc.top, tc.step)
		}
	}
	for v, want := range map[float64]string{0: "0", 2.5: "2.5", 950: "950", 1500: "1.5k", 2e6: "2M", 123_456: "123k"} {
		if got := siFormat(v); got != want {
			t.Errorf("siFormat(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestWorkerProtocolErrors(t *testing.T) {
	in := strings.NewReader(`{"op":"snap"}` + "\n" + `{"op":"setup","spec":{"variant":"nats","subscribers":1}}` + "\n")
	var out bytes.Buffer
	if err := serveWorker(context.Background(), in, &out, workerHooks{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"error":"\"snap\" before setup"`) || !strings.Contains(lines[1], `"error":"bad spec`) {
		t.Errorf("replies:\n%s", out.String())
	}
	if err := serveWorker(context.Background(), strings.NewReader("not json\n"), io.Discard, workerHooks{}); err == nil {
		t.Error("a line that is not JSON was accepted")
	}
}

func TestValidateEngines(t *testing.T) {
	for _, tc := range []struct {
		set  func(*Config)
		says string // "" for valid
	}{
		{func(c *Config) {}, ""},
		{func(c *Config) { c.Engine, c.Nodes, c.PublishNodes = "redis", 3, "2" }, ""},
		{func(c *Config) { c.Engine, c.Nodes, c.PublishNodes = "memory,redis", 2, "all" }, ""},
		{func(c *Config) { c.Engine, c.RedisAddr = "redis", "127.0.0.1:1,127.0.0.1:2" }, ""},
		{func(c *Config) { c.Engine = "etcd" }, `unknown engine "etcd"`},
		{func(c *Config) { c.Engine = " , " }, "no engine"},
		{func(c *Config) { c.Nodes = 2 }, "need --engine redis"},
		{func(c *Config) { c.Engine, c.Nodes = "redis", 0 }, "nodes must be at least 1"},
		{func(c *Config) { c.Engine, c.Nodes, c.PublishNodes = "redis", 2, "2" }, "publish nodes"},
		{func(c *Config) { c.Engine, c.PublishNodes = "redis", "some" }, "publish nodes"},
		{func(c *Config) { c.RedisAddr = "127.0.0.1:1" }, "needs --engine redis"},
		{func(c *Config) { c.Engine, c.RedisAddr = "redis", "nohost" }, `redis address "nohost"`},
		{func(c *Config) { c.Engine, c.RedisShards = "redis", 0 }, "shards must be at least 1"},
		{func(c *Config) { c.Engine, c.RedisShards, c.RedisAddr = "redis", 2, "127.0.0.1:1" }, "one per shard"},
		{func(c *Config) { c.Engine, c.Server, c.Variants = "redis", "127.0.0.1:1", []string{VariantRoomcast} }, "cannot be measured with --server"},
	} {
		c := DefaultConfig()
		tc.set(&c)
		err := c.Validate()
		if tc.says == "" && err != nil || tc.says != "" && (err == nil || !strings.Contains(err.Error(), tc.says)) {
			t.Errorf("engine %q nodes %d publish %q redis %q shards %d: %v, want %q", c.Engine, c.Nodes, c.PublishNodes, c.RedisAddr, c.RedisShards, err, tc.says)
		}
	}
	if e, _ := ParseEngines("redis,memory,redis"); !slices.Equal(e, []string{EngineMemory, EngineRedis}) {
		t.Errorf("engines %v, want memory first, once each", e)
	}
}

// TestShapes checks the default matrix and the sweep's shapes as they are
// labelled: --sizes 10 with 1000 subscribers is 100 rooms of 10 over 50
// connections, not one room of 10.
func TestShapes(t *testing.T) {
	type got struct {
		scenario, label string
		payload         int
		kinds           []string
		setups          []setup
	}
	list := func(c Config) []got {
		var out []got
		for _, sh := range c.shapes() {
			out = append(out, got{sh.scenario, sh.label(), sh.payload, sh.kinds, sh.setups})
		}
		return out
	}
	mem, both := []string{KindSaturation, KindPaced}, []string{KindSaturation}
	want := []got{
		{ScenarioFanout, "1 × 1000 over 50 connections", 1024, mem, []setup{
			{VariantRoomcast, EngineMemory, PublishUnary}, {VariantEncodeEach, EngineMemory, PublishUnary}, {VariantNATS, "", ""}}},
		{ScenarioSmallRooms, "100 × 10 over 50 connections", 1024, both, []setup{
			{VariantRoomcast, EngineMemory, PublishStream}, {VariantNATS, "", ""}}},
		{ScenarioPublishOnly, "1 × 1 over 1 connection", 64, both, []setup{
			{VariantRoomcast, EngineMemory, PublishUnary}, {VariantRoomcast, EngineMemory, PublishStream}, {VariantNATS, "", ""}}},
	}
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if g := list(c); !reflect.DeepEqual(g, want) {
		t.Errorf("default matrix:\n%v\nwant\n%v", g, want)
	}
	c.Sizes, c.SmallRooms, c.PublishOnly, c.Publish = []int{10, 100, 1000, 5000}, false, false, PublishStream
	var labels []string
	for _, sh := range c.shapes() {
		labels = append(labels, sh.label())
		if sh.setups[0].publish != PublishStream {
			t.Errorf("%s: setups %v", sh.label(), sh.setups)
		}
	}
	if w := []string{"100 × 10 over 50 connections", "10 × 100 over 50 connections", "1 × 1000 over 50 connections", "1 × 5000 over 50 connections"}; !slices.Equal(labels, w) {
		t.Errorf("sizes 10,100,1000,5000: %q, want %q", labels, w)
	}
	c.Variants = []string{VariantNATS, VariantEncodeEach}
	c.SmallRooms, c.PublishOnly = true, true
	if n := len(c.shapes()); n != 4 {
		t.Errorf("without roomcast, %d shapes: the extra scenarios compare roomcast with NATS", n)
	}
	c.Publish = "batch"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "publish mode") {
		t.Errorf("publish mode batch: %v", err)
	}
	if v, err := ParseVariants("nats,roomcast-rawdecode"); err != nil || !slices.Equal(v, []string{VariantNATS, VariantRawDecode}) {
		t.Errorf("variants %v, %v", v, err)
	}
	if slices.Contains(DefaultVariants, VariantRawDecode) || slices.Contains(DefaultConfig().Variants, VariantRawDecode) {
		t.Error("the raw decoder is a default variant")
	}
}

// TestServeLimits checks that the server under test is serve's defaults
// but for what the report states.
func TestServeLimits(t *testing.T) {
	l, diffs := serveLimits(500, 50, 10)
	want := serveconfig.Defaults()
	want.PublishRate, want.PublishByteRate = 0, 0
	if l != want || len(diffs) != 1 || !strings.HasPrefix(diffs[0], "--publish-rate 0") {
		t.Errorf("500 subscribers over 50 connections: %+v, %q", l, diffs)
	}
	l, diffs = serveLimits(100_000, 20_000, 100)
	if l.MaxCredStreams != 120_064 || l.MaxStreams != 120_064 || l.MaxConns != 20_064 || l.CredCommandRate != 0 || len(diffs) != 5 {
		t.Errorf("100,000 subscribers over 20,000 connections: %+v, %q", l, diffs)
	}
	c := DefaultConfig()
	d := serveDiffs(c)
	if len(d) != len(serveAlwaysDiffers)+2 || !strings.HasPrefix(d[len(d)-1], "--max-streams-per-credential 1114 instead of 1000") {
		t.Errorf("default run: %q", d)
	}
	if c.Server = "127.0.0.1:1"; serveDiffs(c) != nil {
		t.Error("a remote server's differences were stated")
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tx\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nThreads: 4\n"
	if n, ok := parseVmRSS([]byte(status)); !ok || n != 12345<<10 {
		t.Errorf("VmRSS: %d, %v", n, ok)
	}
	if _, ok := parseVmRSS([]byte("VmRSS: 12 MB\n")); ok {
		t.Error("a VmRSS not in kB was read")
	}
	if n, ok := residentBytes(); runtime.GOOS == "linux" && (!ok || n == 0) {
		t.Errorf("this process's RSS: %d, %v", n, ok)
	}
}
