package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Schema names the format of the JSON report.
const Schema = "roomcast-bench/v1"

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
	Trials   []Trial      `json:"trials"`
	Points   []Point      `json:"points"` // medians of the trials that passed, per variant, engine, kind and room size
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
	Engines      []string `json:"engines"`
	Nodes        int      `json:"nodes"`         // servers of each redis trial
	PublishNodes string   `json:"publish_nodes"` // the node publishers publish to: an index, or all (publisher p to node p mod nodes)
	RedisShards  int      `json:"redis_shards,omitempty"`
}

// Trial is one variant measured once at one room size.
type Trial struct {
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
	// WriteSyscallsPerDelivery is write(2) calls per delivery (Linux only):
	// how well writes to subscribers are coalesced.
	WriteSyscallsPerDelivery *float64    `json:"write_syscalls_per_delivery,omitempty"`
	Memory                   MemoryStats `json:"memory"`
}

// WorkerStats is the cost of the publishers and subscribers over the
// measurement window: what the server competes with for the machine's CPUs.
type WorkerStats struct {
	CPUSeconds       float64 `json:"cpu_seconds"`
	NsPerDelivery    float64 `json:"cpu_ns_per_delivery"`
	MessagesPerFrame float64 `json:"messages_per_frame"` // messages per response received (roomcast), 1 for NATS
}

// MemoryStats is the server's heap in use plus goroutine stacks: with no
// client, with the connections open, with every subscriber joined (each
// after a garbage collection), and the peak while measuring.
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
}

// Point is the medians of one variant's passing trials of one kind at one
// room size. Server figures are absent when not measured.
type Point struct {
	Variant               string        `json:"variant"`
	Engine                string        `json:"engine,omitempty"`
	Kind                  string        `json:"kind"`
	RoomSize              int           `json:"room_size"`
	Runs                  int           `json:"runs"`   // passing trials
	Failed                int           `json:"failed"` // failing trials, left out
	PublishRate           float64       `json:"publish_rate"`
	PublishedPerSec       float64       `json:"published_per_sec"`
	DeliveredPerSec       float64       `json:"delivered_per_sec"`
	DeliveredMBPerSec     float64       `json:"delivered_mb_per_sec"`
	LatencyP50US          float64       `json:"latency_p50_us"`
	LatencyP99US          float64       `json:"latency_p99_us"`
	LatencyP999US         float64       `json:"latency_p999_us"`
	CPUNsPerDelivery      *float64      `json:"cpu_ns_per_delivery,omitempty"`
	CPUSecondsPerMillion  *float64      `json:"cpu_seconds_per_million_deliveries,omitempty"`
	MemPerConnectionBytes *float64      `json:"mem_per_connection_bytes,omitempty"`
	MemPerStreamIdleBytes *float64      `json:"mem_per_stream_idle_bytes,omitempty"`
	MemPerStreamBusyBytes *float64      `json:"mem_per_stream_busy_bytes,omitempty"`
	WorkerNsPerDelivery   *float64      `json:"worker_cpu_ns_per_delivery,omitempty"`
	MessagesPerFrame      *float64      `json:"messages_per_frame,omitempty"`
	WritesPerDelivery     *float64      `json:"write_syscalls_per_delivery,omitempty"`
	Cluster               *ClusterPoint `json:"cluster,omitempty"`
}

// Ratio is Of's median of Metric over Baseline's, of one kind at one room
// size: below 1 means Of has less of it.
type Ratio struct {
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

// summary is the trial's main figures, for progress lines.
func (t Trial) summary() string {
	s := fmt.Sprintf("%.0f deliveries/s", t.DeliveredPerSec)
	if t.Server != nil {
		s += fmt.Sprintf(", server CPU %.0f ns per delivery", t.Server.NsPerDelivery)
	}
	if t.Latency != nil {
		s += fmt.Sprintf(", p99 latency %.0f µs", t.Latency.P99US)
	}
	if t.Worker != nil {
		s += fmt.Sprintf(", client CPU %.0f ns per delivery", t.Worker.NsPerDelivery)
	}
	return s
}

func newReport(cfg Config) *Report {
	return &Report{
		Schema:  Schema,
		Started: time.Now().UTC().Truncate(time.Second),
		Host:    hostInfo(cfg),
		Config: ReportConfig{
			Server: cfg.Server, Subscribers: cfg.Subscribers, Connections: cfg.Connections, Rooms: cfg.Rooms,
			Publishers: cfg.Publishers, PayloadBytes: cfg.Payload, Rate: cfg.Rate, Paced: cfg.Paced, Window: cfg.window(),
			StreamWindow: cfg.StreamWindow, WarmupS: cfg.Warmup.Seconds(), DurationS: cfg.Duration.Seconds(), Reps: cfg.Reps,
			Variants: cfg.Variants, Sizes: cfg.sizes(),
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
			r.Failures = append(r.Failures, fmt.Sprintf("%s %s size %d rep %d: %s", t.Variant, t.Kind, t.RoomSize, t.Rep, strings.Join(t.Failures, "; ")))
		}
	}
	r.Points = points(r.Trials)
	r.Ratios = ratios(r.Points)
}

func points(trials []Trial) []Point {
	type key struct {
		variant, engine, kind string
		size                  int
	}
	groups := map[key][]Trial{}
	var order []key
	for _, t := range trials {
		k := key{t.Variant, t.Engine, t.Kind, t.RoomSize}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], t)
	}
	var out []Point
	for _, k := range order {
		p := Point{Variant: k.variant, Engine: k.engine, Kind: k.kind, RoomSize: k.size}
		var ok []Trial
		for _, t := range groups[k] {
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
				batch := median(ok, func(t Trial) float64 { return t.Worker.MessagesPerFrame })
				p.WorkerNsPerDelivery, p.MessagesPerFrame = &ns, &batch
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

// ratioMetrics are the metrics ratios compare.
var ratioMetrics = []struct {
	name string
	get  func(Point) *float64
}{
	{"delivered_per_sec", func(p Point) *float64 { return &p.DeliveredPerSec }},
	{"cpu_ns_per_delivery", func(p Point) *float64 { return p.CPUNsPerDelivery }},
	{"latency_p99_us", func(p Point) *float64 { return &p.LatencyP99US }},
	{"mem_per_stream_idle_bytes", func(p Point) *float64 { return p.MemPerStreamIdleBytes }},
}

func ratios(points []Point) []Ratio {
	var out []Ratio
	for _, of := range points {
		if of.Runs == 0 {
			continue
		}
		for _, base := range points {
			if base.Kind != of.Kind || base.RoomSize != of.RoomSize || base.Runs == 0 {
				continue
			}
			byVariant := of.Variant == VariantRoomcast && base.Variant != of.Variant &&
				(base.Engine == of.Engine || base.Engine == "" && of.Engine == EngineMemory)
			byEngine := of.Engine == EngineRedis && base.Engine == EngineMemory && base.Variant == of.Variant
			if !byVariant && !byEngine {
				continue
			}
			for _, m := range ratioMetrics {
				a, b := m.get(of), m.get(base)
				if a == nil || b == nil || *b == 0 {
					continue
				}
				out = append(out, Ratio{Kind: of.Kind, RoomSize: of.RoomSize, Metric: m.name,
					Of: series(of.Variant, of.Engine), Baseline: series(base.Variant, base.Engine), Value: *a / *b})
			}
		}
	}
	return out
}

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

// writeText prints the medians and the ratios as tables.
func writeText(w io.Writer, r *Report) {
	c := r.Config
	fmt.Fprintf(w, "roomcast-bench: %d subscribers over %d connections and %d rooms per point (sizes %v), %d publishers, %d-byte payloads, window %d; medians of %d repetitions of %v after %v warm-up\n",
		c.Subscribers, c.Connections, c.Rooms, c.Sizes, c.Publishers, c.PayloadBytes, c.Window, c.Reps, time.Duration(c.DurationS*1e9), time.Duration(c.WarmupS*1e9))
	if r.Host.ServerInProcess {
		if r.Host.WorkerProcess {
			fmt.Fprintln(w, "server CPU and memory: the parent process, which hosts only the server")
		} else {
			fmt.Fprintln(w, "server CPU and memory: the parent process, which also hosts the worker (in-process: not a measurement)")
		}
	}
	writeClusterHeader(w, r)
	fmt.Fprintln(w, "latency at saturation is mostly time queued in the flow-control window; paced latency is the one to compare")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kind\tsize\tvariant\truns\tpub/s\tdeliveries/s\tMB/s\tCPU ns/deliv\tCPU s/M\tp50 µs\tp99 µs\tp99.9 µs\tB/stream idle\tB/stream busy\tB/conn\twrites/deliv\tclient ns/deliv\tmsgs/frame\t")
	opt := func(v *float64, format string) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf(format, *v)
	}
	for _, p := range r.Points {
		rate := "max"
		if p.PublishRate > 0 {
			rate = fmt.Sprintf("%.0f", p.PublishRate)
		}
		runs := fmt.Sprint(p.Runs)
		if p.Failed > 0 {
			runs += fmt.Sprintf(" (%d failed)", p.Failed)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%.0f\t%.1f\t%s\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			p.Kind, p.RoomSize, series(p.Variant, p.Engine), runs, rate, p.DeliveredPerSec, p.DeliveredMBPerSec,
			opt(p.CPUNsPerDelivery, "%.0f"), opt(p.CPUSecondsPerMillion, "%.3f"),
			p.LatencyP50US, p.LatencyP99US, p.LatencyP999US,
			opt(p.MemPerStreamIdleBytes, "%.0f"), opt(p.MemPerStreamBusyBytes, "%.0f"), opt(p.MemPerConnectionBytes, "%.0f"),
			opt(p.WritesPerDelivery, "%.3f"), opt(p.WorkerNsPerDelivery, "%.0f"), opt(p.MessagesPerFrame, "%.1f"))
	}
	tw.Flush()
	writeClusterText(w, r)
	if len(r.Ratios) > 0 {
		fmt.Fprintln(w, "\nratios (of / baseline; below 1 is less):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, x := range r.Ratios {
			fmt.Fprintf(tw, "  %s\t%d/room\t%s\t%s vs %s\t%.3f\n", x.Kind, x.RoomSize, x.Metric, x.Of, x.Baseline, x.Value)
		}
		tw.Flush()
	}
	var notes []string
	for _, t := range r.Trials {
		for _, n := range t.Notes {
			notes = append(notes, fmt.Sprintf("%s %s size %d rep %d: %s", t.Variant, t.Kind, t.RoomSize, t.Rep, n))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "\nnotes:\n  %s\n", strings.Join(notes, "\n  "))
	}
	if r.OK {
		fmt.Fprintln(w, "\nok: every subscriber got every message in order; none was cut off")
	} else {
		fmt.Fprintf(w, "\nFAILED:\n  %s\n", strings.Join(r.Failures, "\n  "))
	}
}
