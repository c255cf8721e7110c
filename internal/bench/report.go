package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Schema names the format of the JSON report.
const Schema = "roomcast-bench/v2"

// Report is everything a run measured: bench.json.
type Report struct {
	Schema   string       `json:"schema"`
	Started  time.Time    `json:"started"`
	Seconds  float64      `json:"seconds"` // the whole run
	Host     Host         `json:"host"`
	Config   ReportConfig `json:"config"`
	OK       bool         `json:"ok"` // every trial passed its checks
	Failures []string     `json:"failures,omitempty"`
	Redis    *RedisInfo   `json:"redis,omitempty"` // the Redis of the EngineRedis trials
	// ServerDiffers is what the in-process roomcast servers do differently
	// from "roomcast serve" with its defaults; absent with --server.
	ServerDiffers []string `json:"server_differs_from_serve_defaults,omitempty"`
	Trials        []Trial  `json:"trials"`
	Points        []Point  `json:"points"` // medians of the trials that passed, per variant, engine, kind and room size
	// Ratios are roomcast's medians over the other variants' on the same
	// engine (NATS: in memory), and each variant's on Redis over its own
	// in memory.
	Ratios []Ratio `json:"ratios"`
}

// Host is where the run happened.
type Host struct {
	GOOS            string `json:"goos"`
	GOARCH          string `json:"goarch"`
	CPUs            int    `json:"cpus"`
	GoVersion       string `json:"go_version"`
	WorkerProcess   bool   `json:"worker_process"`    // false: the worker ran in the server's process, whose CPU and memory include it
	ServerInProcess bool   `json:"server_in_process"` // false: --server; server CPU and memory are not measured
}

// ReportConfig is the run's configuration.
type ReportConfig struct {
	Server       string   `json:"server,omitempty"`
	Subscribers  int      `json:"subscribers"`
	Connections  int      `json:"connections"`
	Rooms        int      `json:"rooms"`
	Publishers   int      `json:"publishers"`
	PayloadBytes int      `json:"payload_bytes"`
	Rate         float64  `json:"rate"`  // messages/s; 0 for saturation
	Paced        float64  `json:"paced"` // deliveries/s of the paced trials; 0 for none
	Window       int      `json:"window"`
	StreamWindow int      `json:"stream_window_bytes,omitempty"` // fixed HTTP/2 window per subscriber stream; absent: grpc-go's dynamic one
	WarmupS      float64  `json:"warmup_s"`
	DurationS    float64  `json:"duration_s"`
	Reps         int      `json:"reps"`
	Variants     []string `json:"variants"`
	Sizes        []int    `json:"sizes"`
	Publish      string   `json:"publish"` // the fanout's roomcast publishers: unary or stream
	SmallRooms   bool     `json:"small_rooms"`
	PublishOnly  bool     `json:"publish_only"`
	Engines      []string `json:"engines"`
	Nodes        int      `json:"nodes"`         // servers of each redis trial
	PublishNodes string   `json:"publish_nodes"` // the node publishers publish to: an index, or all (publisher p to node p mod nodes)
	RedisShards  int      `json:"redis_shards,omitempty"`
}

// Trial is one variant measured once in one shape.
type Trial struct {
	Scenario string `json:"scenario"` // fanout, small-rooms or publish-only
	Shape    string `json:"shape"`    // as run: rooms × subscribers per room over connections
	// Publish is how the roomcast publishers publish, unary or stream;
	// absent for NATS, whose publishers call Publish, in order, on one
	// connection each.
	Publish string `json:"publish,omitempty"`
	// PublishInFlight is how many messages one roomcast publisher has in
	// flight at most.
	PublishInFlight int `json:"publish_in_flight,omitempty"`
	// FlushEvery is how many messages a NATS publisher publishes between
	// flushes, the round trip that confirms the server has them:
	// natsFlushEvery in the publish-only scenario, else absent (no flush).
	FlushEvery        int           `json:"flush_every,omitempty"`
	Variant           string        `json:"variant"`
	Engine            string        `json:"engine,omitempty"` // memory or redis; absent for NATS
	Kind              string        `json:"kind"`             // saturation, rate or paced
	RoomSize          int           `json:"room_size"`
	Rep               int           `json:"rep"`
	Subscribers       int           `json:"subscribers"`
	Connections       int           `json:"connections"`
	Rooms             int           `json:"rooms"`
	Publishers        int           `json:"publishers"`
	PayloadBytes      int           `json:"payload_bytes"`
	PublishRate       float64       `json:"publish_rate"`      // messages/s over all publishers; 0 for saturation
	Window            int           `json:"window"`            // flow control: messages a room may run ahead of its slowest subscriber
	Seconds           float64       `json:"seconds"`           // the measurement window
	Published         uint64        `json:"published"`         // messages, in the whole trial
	PublishedPerSec   float64       `json:"published_per_sec"` // messages published in the window, per second
	Delivered         uint64        `json:"delivered"`         // messages received by subscribers in the window
	DeliveredPerSec   float64       `json:"delivered_per_sec"`
	DeliveredMBPerSec float64       `json:"delivered_mb_per_sec"` // payload bytes
	Latency           *LatencyStats `json:"latency,omitempty"`    // publish to delivery, in the window
	Cluster           *ClusterStats `json:"cluster,omitempty"`    // roomcast variants only: the nodes and their Redis
	Server            *ServerStats  `json:"server,omitempty"`     // absent with --server
	Worker            *WorkerStats  `json:"worker,omitempty"`     // the publishers' and subscribers' process
	Profile           string        `json:"profile,omitempty"`    // CPU profile of the window
	OK                bool          `json:"ok"`
	Failures          []string      `json:"failures,omitempty"`
	Notes             []string      `json:"notes,omitempty"` // caveats that do not fail the trial
}

// ServerStats is the server process's cost over the measurement window.
type ServerStats struct {
	CPUSeconds           float64 `json:"cpu_seconds"`
	CPUSecondsPerMillion float64 `json:"cpu_seconds_per_million_deliveries"`
	NsPerDelivery        float64 `json:"cpu_ns_per_delivery"`
	NsPerPublish         float64 `json:"cpu_ns_per_publish"` // over the messages published in the window
	// WriteSyscallsPerDelivery is write(2) calls per delivery (Linux only):
	// how well writes to subscribers are coalesced.
	WriteSyscallsPerDelivery *float64      `json:"write_syscalls_per_delivery,omitempty"`
	Writers                  *WriterCounts `json:"writers,omitempty"` // roomcast's only
	Memory                   MemoryStats   `json:"memory"`
}

// WriterCounts is what roomcast's connection writers did per delivery over
// the window (server.WriterStats): wake-ups from waiting, passes over a
// connection's ready streams, passes held back to let messages gather, and
// Sends, whose inverse is messages per response.
type WriterCounts struct {
	WakeupsPerDelivery float64 `json:"wakeups_per_delivery"`
	PassesPerDelivery  float64 `json:"passes_per_delivery"`
	HoldsPerDelivery   float64 `json:"holds_per_delivery"`
	SendsPerDelivery   float64 `json:"sends_per_delivery"`
	// HoldMS is how long a hold took, on average: how long, at most, the
	// messages of a held pass waited for it beyond the writer's wake-up.
	HoldMS float64 `json:"hold_ms"`
	// Detaches is how many times, in the window, a Send blocked because
	// its subscriber read too slowly (HTTP/2 flow control, or the socket)
	// held its connection's writer long enough to move the stream off it.
	Detaches uint64 `json:"detaches"`
}

// WorkerStats is the cost of the publishers and subscribers over the
// measurement window: what the server competes with for the machine's CPUs.
type WorkerStats struct {
	CPUSeconds    float64 `json:"cpu_seconds"`
	NsPerDelivery float64 `json:"cpu_ns_per_delivery"`
	// MessagesPerFrame is messages per response received with the raw
	// decoder, 1 for NATS; 0 (unknown) with the client package, which hands
	// messages over one by one.
	MessagesPerFrame float64 `json:"messages_per_frame,omitempty"`
	// Runtime is the worker's scheduling delays and garbage collection
	// over the window.
	Runtime *RuntimeStats `json:"runtime,omitempty"`
}

// MemoryStats is the server's heap in use plus goroutine stacks, and its
// resident set size (RSS, Linux): with no client, with the connections
// open, with every subscriber joined (each after a garbage collection that
// returns free memory to the system), and the peak while measuring. RSS
// counts all the server process holds, runtime and binary included.
type MemoryStats struct {
	EmptyBytes         uint64  `json:"empty_bytes"`
	ConnectedBytes     uint64  `json:"connected_bytes"`
	SubscribedBytes    uint64  `json:"subscribed_bytes"`
	BusyPeakBytes      uint64  `json:"busy_peak_bytes"`
	PerConnectionBytes float64 `json:"per_connection_bytes"`  // (connected - empty) / connections, publishers' included
	PerStreamIdleBytes float64 `json:"per_stream_idle_bytes"` // (subscribed - connected) / subscribers
	// PerStreamIdleStackBytes is the part of PerStreamIdleBytes that is
	// goroutine stacks.
	PerStreamIdleStackBytes float64 `json:"per_stream_idle_stack_bytes"`
	PerStreamBusyBytes      float64 `json:"per_stream_busy_bytes"` // (busy peak - connected) / subscribers

	EmptyRSSBytes         uint64  `json:"empty_rss_bytes,omitempty"`
	ConnectedRSSBytes     uint64  `json:"connected_rss_bytes,omitempty"`
	SubscribedRSSBytes    uint64  `json:"subscribed_rss_bytes,omitempty"`
	BusyPeakRSSBytes      uint64  `json:"busy_peak_rss_bytes,omitempty"`
	PerConnectionRSSBytes float64 `json:"per_connection_rss_bytes,omitempty"`  // (connected - empty) / connections
	PerStreamIdleRSSBytes float64 `json:"per_stream_idle_rss_bytes,omitempty"` // (subscribed - connected) / subscribers
	// PerConnOneStreamRSSBytes is (subscribed - empty) / connections: a
	// connection with its streams, one each when there are as many
	// connections as subscribers.
	PerConnOneStreamRSSBytes float64 `json:"per_connection_with_streams_rss_bytes,omitempty"`
}

// Point is the medians of one variant's passing trials of one kind at one
// room size. Server figures are absent when not measured.
type Point struct {
	Scenario                    string        `json:"scenario"`
	Shape                       string        `json:"shape"`
	Rooms                       int           `json:"rooms"`
	Connections                 int           `json:"connections"`
	PayloadBytes                int           `json:"payload_bytes"`
	Publish                     string        `json:"publish,omitempty"`
	Variant                     string        `json:"variant"`
	Engine                      string        `json:"engine,omitempty"`
	Kind                        string        `json:"kind"`
	RoomSize                    int           `json:"room_size"`
	Runs                        int           `json:"runs"`   // passing trials
	Failed                      int           `json:"failed"` // failing trials, left out
	PublishRate                 float64       `json:"publish_rate"`
	PublishedPerSec             float64       `json:"published_per_sec"`
	DeliveredPerSec             float64       `json:"delivered_per_sec"`
	DeliveredMBPerSec           float64       `json:"delivered_mb_per_sec"`
	LatencyP50US                float64       `json:"latency_p50_us"`
	LatencyP99US                float64       `json:"latency_p99_us"`
	LatencyP999US               float64       `json:"latency_p999_us"`
	CPUNsPerDelivery            *float64      `json:"cpu_ns_per_delivery,omitempty"`
	CPUSecondsPerMillion        *float64      `json:"cpu_seconds_per_million_deliveries,omitempty"`
	CPUNsPerPublish             *float64      `json:"cpu_ns_per_publish,omitempty"`
	MemPerConnRSSBytes          *float64      `json:"mem_per_connection_rss_bytes,omitempty"`
	MemPerStreamRSSBytes        *float64      `json:"mem_per_stream_idle_rss_bytes,omitempty"`
	MemPerConnOneStreamRSSBytes *float64      `json:"mem_per_connection_with_streams_rss_bytes,omitempty"`
	MemPerConnectionBytes       *float64      `json:"mem_per_connection_bytes,omitempty"`
	MemPerStreamIdleBytes       *float64      `json:"mem_per_stream_idle_bytes,omitempty"`
	MemPerStreamBusyBytes       *float64      `json:"mem_per_stream_busy_bytes,omitempty"`
	WorkerNsPerDelivery         *float64      `json:"worker_cpu_ns_per_delivery,omitempty"`
	MessagesPerFrame            *float64      `json:"messages_per_frame,omitempty"`
	WritesPerDelivery           *float64      `json:"write_syscalls_per_delivery,omitempty"`
	Cluster                     *ClusterPoint `json:"cluster,omitempty"`
}

// Ratio is Of's median of Metric over Baseline's, of one kind in one shape:
// below 1 means Of has less of it.
type Ratio struct {
	Scenario string  `json:"scenario"`
	Shape    string  `json:"shape"`
	Kind     string  `json:"kind"`
	RoomSize int     `json:"room_size"`
	Metric   string  `json:"metric"`
	Of       string  `json:"of"`
	Baseline string  `json:"baseline"`
	Value    float64 `json:"value"`
}

// series names a variant on an engine: the variant alone in memory (and
// for NATS), variant/redis on Redis.
func series(variant, engine string) string {
	if engine == EngineRedis {
		return variant + "/" + engine
	}
	return variant
}

// seriesOf names a setup: its series, and the roomcast publishers' mode.
func seriesOf(s setup) string {
	if s.publish == "" {
		return series(s.variant, s.engine)
	}
	return series(s.variant, s.engine) + " (" + s.publish + " publish)"
}

// summary is the trial's main figures, for progress lines.
func (t Trial) summary() string {
	s := fmt.Sprintf("%.0f publishes/s, %.0f deliveries/s", t.PublishedPerSec, t.DeliveredPerSec)
	if t.Server != nil {
		s += fmt.Sprintf(", server CPU %.0f ns per delivery, %.0f ns per publish", t.Server.NsPerDelivery, t.Server.NsPerPublish)
		if w := t.Server.Writers; w != nil {
			s += fmt.Sprintf(", per delivery %.3f writer wake-ups, %.3f passes, %.3f holds (of %.1f ms on average), %.3f Sends", w.WakeupsPerDelivery, w.PassesPerDelivery, w.HoldsPerDelivery, w.HoldMS, w.SendsPerDelivery)
			s += fmt.Sprintf(", %d streams detached (a Send blocked: its subscriber read too slowly)", w.Detaches)
		}
	}
	if t.Latency != nil {
		s += fmt.Sprintf(", p99 latency %.0f µs", t.Latency.P99US)
	}
	if t.Worker != nil {
		s += fmt.Sprintf(", client CPU %.0f ns per delivery", t.Worker.NsPerDelivery)
		if rt := t.Worker.Runtime; rt != nil {
			gc := "its CPU share unknown"
			if rt.GCCPUShare != nil {
				gc = fmt.Sprintf("%.0f%% of its CPU", 100**rt.GCCPUShare)
			}
			s += fmt.Sprintf(" (runnable-to-running p50 %.0f µs, p99 %.0f µs; %d GCs, %s)", rt.SchedP50US, rt.SchedP99US, rt.GCCycles, gc)
		}
	}
	return s
}

func newReport(cfg Config) *Report {
	return &Report{
		Schema:        Schema,
		Started:       time.Now().UTC().Truncate(time.Second),
		Host:          hostInfo(cfg),
		ServerDiffers: serveDiffs(cfg),
		Config: ReportConfig{
			Server: cfg.Server, Subscribers: cfg.Subscribers, Connections: cfg.Connections, Rooms: cfg.Rooms,
			Publishers: cfg.Publishers, PayloadBytes: cfg.Payload, Rate: cfg.Rate, Paced: cfg.Paced, Window: cfg.window(cfg.Payload),
			StreamWindow: cfg.StreamWindow, WarmupS: cfg.Warmup.Seconds(), DurationS: cfg.Duration.Seconds(), Reps: cfg.Reps,
			Variants: cfg.Variants, Sizes: cfg.sizes(), Publish: cfg.Publish, SmallRooms: cfg.SmallRooms, PublishOnly: cfg.PublishOnly,
			Engines: cfg.engines(), Nodes: cfg.Nodes, PublishNodes: cfg.PublishNodes,
		},
	}
}

// finish computes the medians, the ratios and the verdict.
func (r *Report) finish() {
	r.Seconds = time.Since(r.Started).Seconds()
	r.OK = true
	for _, t := range r.Trials {
		if !t.OK {
			r.OK = false
			r.Failures = append(r.Failures, fmt.Sprintf("%s %s, %s, %s rep %d: %s", t.Variant, t.Scenario, t.Shape, t.Kind, t.Rep, strings.Join(t.Failures, "; ")))
		}
	}
	r.Points = points(r.Trials)
	r.Ratios = ratios(r.Points)
}

func points(trials []Trial) []Point {
	type key struct {
		scenario, shape, publish, variant, engine, kind string
	}
	groups := map[key][]Trial{}
	var order []key
	for _, t := range trials {
		k := key{t.Scenario, t.Shape, t.Publish, t.Variant, t.Engine, t.Kind}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], t)
	}
	var out []Point
	for _, k := range order {
		g := groups[k]
		p := Point{Scenario: k.scenario, Shape: k.shape, Publish: k.publish, Variant: k.variant, Engine: k.engine, Kind: k.kind,
			RoomSize: g[0].RoomSize, Rooms: g[0].Rooms, Connections: g[0].Connections, PayloadBytes: g[0].PayloadBytes}
		var ok []Trial
		for _, t := range g {
			if t.OK {
				ok = append(ok, t)
			} else {
				p.Failed++
			}
			p.PublishRate = t.PublishRate
		}
		p.Runs = len(ok)
		if len(ok) > 0 {
			p.DeliveredPerSec = median(ok, func(t Trial) float64 { return t.DeliveredPerSec })
			p.DeliveredMBPerSec = median(ok, func(t Trial) float64 { return t.DeliveredMBPerSec })
			p.LatencyP50US = median(ok, func(t Trial) float64 { return t.Latency.P50US })
			p.LatencyP99US = median(ok, func(t Trial) float64 { return t.Latency.P99US })
			p.LatencyP999US = median(ok, func(t Trial) float64 { return t.Latency.P999US })
			if ok[0].Server != nil {
				server := func(f func(*ServerStats) float64) *float64 {
					v := median(ok, func(t Trial) float64 { return f(t.Server) })
					return &v
				}
				p.CPUNsPerDelivery = server(func(s *ServerStats) float64 { return s.NsPerDelivery })
				p.CPUSecondsPerMillion = server(func(s *ServerStats) float64 { return s.CPUSecondsPerMillion })
				p.MemPerConnectionBytes = server(func(s *ServerStats) float64 { return s.Memory.PerConnectionBytes })
				p.MemPerStreamIdleBytes = server(func(s *ServerStats) float64 { return s.Memory.PerStreamIdleBytes })
				p.MemPerStreamBusyBytes = server(func(s *ServerStats) float64 { return s.Memory.PerStreamBusyBytes })
				p.CPUNsPerPublish = server(func(s *ServerStats) float64 { return s.NsPerPublish })
				if ok[0].Server.Memory.SubscribedRSSBytes > 0 {
					p.MemPerConnRSSBytes = server(func(s *ServerStats) float64 { return s.Memory.PerConnectionRSSBytes })
					p.MemPerStreamRSSBytes = server(func(s *ServerStats) float64 { return s.Memory.PerStreamIdleRSSBytes })
					p.MemPerConnOneStreamRSSBytes = server(func(s *ServerStats) float64 { return s.Memory.PerConnOneStreamRSSBytes })
				}
			}
			if ok[0].Server != nil && ok[0].Server.WriteSyscallsPerDelivery != nil {
				v := median(ok, func(t Trial) float64 {
					if t.Server.WriteSyscallsPerDelivery == nil {
						return 0
					}
					return *t.Server.WriteSyscallsPerDelivery
				})
				p.WritesPerDelivery = &v
			}
			if ok[0].Worker != nil {
				ns := median(ok, func(t Trial) float64 { return t.Worker.NsPerDelivery })
				p.WorkerNsPerDelivery = &ns
				if ok[0].Worker.MessagesPerFrame > 0 {
					batch := median(ok, func(t Trial) float64 { return t.Worker.MessagesPerFrame })
					p.MessagesPerFrame = &batch
				}
			}
			p.PublishedPerSec = median(ok, func(t Trial) float64 { return t.PublishedPerSec })
			p.Cluster = clusterPoint(ok)
		}
		out = append(out, p)
	}
	return out
}

// median of f over trials that all have what f reads.
func median(trials []Trial, f func(Trial) float64) float64 {
	v := make([]float64, 0, len(trials))
	for _, t := range trials {
		if t.Latency == nil {
			t.Latency = &LatencyStats{}
		}
		if t.Server == nil {
			t.Server = &ServerStats{}
		}
		if t.Worker == nil {
			t.Worker = &WorkerStats{}
		}
		v = append(v, f(t))
	}
	return medianOf(v)
}

// medianOf returns the median of v, which it sorts.
func medianOf(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// ratioMetrics are the metrics ratios compare; those with a scenario only
// in it.
var ratioMetrics = []struct {
	name, scenario string
	get            func(Point) *float64
}{
	{"published_per_sec", ScenarioPublishOnly, func(p Point) *float64 { return &p.PublishedPerSec }},
	{"cpu_ns_per_publish", ScenarioPublishOnly, func(p Point) *float64 { return p.CPUNsPerPublish }},
	{"delivered_per_sec", "", func(p Point) *float64 { return &p.DeliveredPerSec }},
	{"cpu_ns_per_delivery", "", func(p Point) *float64 { return p.CPUNsPerDelivery }},
	{"latency_p99_us", "", func(p Point) *float64 { return &p.LatencyP99US }},
	{"mem_per_stream_idle_bytes", ScenarioFanout, func(p Point) *float64 { return p.MemPerStreamIdleBytes }},
	{"mem_per_stream_idle_rss_bytes", ScenarioFanout, func(p Point) *float64 { return p.MemPerStreamRSSBytes }},
}

// ratios compares, within each shape and kind, roomcast with each other
// variant on the same engine (NATS: in memory) and the same publish mode
// (NATS: whatever roomcast's), and each variant on Redis with itself in
// memory.
func ratios(points []Point) []Ratio {
	var out []Ratio
	for _, of := range points {
		if of.Runs == 0 {
			continue
		}
		for _, base := range points {
			if base.Scenario != of.Scenario || base.Shape != of.Shape || base.Kind != of.Kind || base.Runs == 0 {
				continue
			}
			byVariant := of.Variant == VariantRoomcast && base.Variant != of.Variant &&
				(base.Engine == of.Engine || base.Engine == "" && of.Engine == EngineMemory) &&
				(base.Publish == of.Publish || base.Variant == VariantNATS)
			byEngine := of.Engine == EngineRedis && base.Engine == EngineMemory && base.Variant == of.Variant && base.Publish == of.Publish
			if !byVariant && !byEngine {
				continue
			}
			for _, m := range ratioMetrics {
				if m.scenario != "" && m.scenario != of.Scenario {
					continue
				}
				a, b := m.get(of), m.get(base)
				if a == nil || b == nil || *b == 0 {
					continue
				}
				out = append(out, Ratio{Scenario: of.Scenario, Shape: of.Shape, Kind: of.Kind, RoomSize: of.RoomSize, Metric: m.name,
					Of: pointSeries(of), Baseline: pointSeries(base), Value: *a / *b})
			}
		}
	}
	return out
}

// pointSeries names a point's setup.
func pointSeries(p Point) string { return seriesOf(setup{p.Variant, p.Engine, p.Publish}) }

func (r *Report) writeFiles(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "bench.svg"), chartSVG(r), 0o644)
}
