package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/roomcast/roomcast/server"
)

// ErrFailed is returned by Run when a trial failed: a subscriber missed a
// message or got one out of order, was cut off, or a step did not complete.
var ErrFailed = errors.New("benchmark failed")

// How long the parent waits for the worker's steps, beyond their own
// timeouts, and how often it reports progress.
const (
	stepTimeout   = 90 * time.Second
	snapTimeout   = 15 * time.Second
	drainTimeout  = 30 * time.Second
	progressEvery = 500 * time.Millisecond
)

// runner runs the trials of one Run.
type runner struct {
	cfg    Config
	stderr io.Writer
	redis  *redisCluster // for EngineRedis trials; nil if there are none
	total  int           // trials
	done   int
}

// setup is a variant on an engine ("" for NATS, which has none) with its
// publishers' mode ("" for NATS).
type setup struct{ variant, engine, publish string }

// setupsOf returns what each point measures, in report order: each
// roomcast variant on each engine with each publish mode, NATS once.
func setupsOf(variants, engines, publish []string) []setup {
	var out []setup
	for _, v := range variants {
		if v == VariantNATS {
			out = append(out, setup{v, "", ""})
			continue
		}
		if v == VariantWatch { // its server is in memory only
			if slices.Contains(engines, EngineMemory) {
				for _, p := range publish {
					out = append(out, setup{v, EngineMemory, p})
				}
			}
			continue
		}
		for _, e := range engines {
			for _, p := range publish {
				out = append(out, setup{v, e, p})
			}
		}
	}
	return out
}

// Run runs the benchmark cfg describes. It reports progress on stderr, then
// the medians and ratios on stdout, and writes bench.json and bench.svg in
// cfg.Out if set. The error wraps ErrFailed when a trial failed; the report
// is returned whenever the trials ran.
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer) (_ *Report, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, stderr: stderr}
	rep := newReport(cfg)
	if slices.Contains(cfg.engines(), EngineRedis) {
		if r.redis, err = startRedis(cfg); err != nil {
			return nil, err
		}
		defer func() {
			if cerr := r.redis.close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
		rep.Redis = &RedisInfo{Version: r.redis.version, Addrs: r.redis.addrs, Started: len(r.redis.procs) > 0, Prefix: r.redis.prefix}
		rep.Config.RedisShards = len(r.redis.addrs)
	}
	if cfg.Out != "" {
		if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
			return nil, err
		}
	}
	shapes := cfg.shapes()
	for _, sh := range shapes {
		r.total += cfg.Reps * len(sh.kinds) * len(sh.setups)
	}
	// Interleaved, so that a noisy neighbour slows every variant alike.
	for i := 1; i <= cfg.Reps; i++ {
		for si, sh := range shapes {
			for _, kind := range sh.kinds {
				for _, su := range sh.setups {
					var prof profiles
					if i == 1 && si == lastFanout(shapes) && kind == sh.kinds[0] {
						name := strings.ReplaceAll(series(su.variant, su.engine), "/", "-")
						if cfg.CPUProfile != "" {
							prof.server = profilePath(cfg.CPUProfile, name, len(sh.setups))
						}
						if cfg.WorkerCPUProfile != "" && cfg.workerProcess() {
							prof.worker = profilePath(cfg.WorkerCPUProfile, name, len(sh.setups))
						}
					}
					tr := r.trial(ctx, sh, su, kind, i, prof)
					rep.Trials = append(rep.Trials, tr)
					if err := ctx.Err(); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	rep.finish()
	writeText(stdout, rep)
	if cfg.Out != "" {
		if err := rep.writeFiles(cfg.Out); err != nil {
			return rep, err
		}
		fmt.Fprintf(stdout, "\nwrote %s and %s\n", filepath.Join(cfg.Out, "bench.json"), filepath.Join(cfg.Out, "bench.svg"))
	}
	if !rep.OK {
		return rep, fmt.Errorf("%w: %s", ErrFailed, strings.Join(rep.Failures, "; "))
	}
	return rep, nil
}

// lastFanout is the index of the last fanout shape: the largest room size,
// which a CPU profile is taken at.
func lastFanout(shapes []shape) int {
	last := 0
	for i, sh := range shapes {
		if sh.scenario == ScenarioFanout {
			last = i
		}
	}
	return last
}

// profilePath is where variant's CPU profile goes: path itself when one
// variant is measured, else path with "-variant" before its extension.
func profilePath(path, variant string, variants int) string {
	if variants == 1 {
		return path
	}
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "-" + variant + ext
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.stderr, "bench: "+format+"\n", args...)
}

// trial runs one setup in one shape and returns what it measured.
func (r *runner) trial(ctx context.Context, sh shape, su setup, kind string, rep int, profile profiles) Trial {
	cfg := r.cfg
	r.done++
	size := sh.perRoom
	tr := Trial{
		Scenario: sh.scenario, Shape: sh.label(), Publish: su.publish,
		Variant: su.variant, Engine: su.engine, Kind: kind, RoomSize: size, Rep: rep,
		Subscribers: sh.subscribers(), Connections: sh.conns, Rooms: sh.rooms, Publishers: cfg.Publishers,
		PayloadBytes: sh.payload, Window: cfg.window(sh.payload),
	}
	if su.publish != "" {
		tr.PublishInFlight = publishLanes(su.publish)
	}
	if su.variant == VariantNATS && sh.scenario == ScenarioPublishOnly {
		tr.FlushEvery = natsFlushEvery
	}
	switch kind {
	case KindRate:
		tr.PublishRate = cfg.Rate
	case KindPaced:
		tr.PublishRate = cfg.Paced / float64(size)
	}
	if su.engine != "" && cfg.Server == "" {
		tr.Cluster = &ClusterStats{Nodes: 1, PublishNode: "0"}
		if su.engine == EngineRedis {
			tr.Cluster.Nodes, tr.Cluster.PublishNode = cfg.Nodes, cfg.PublishNodes
			if tr.Connections < cfg.Nodes {
				tr.Notes = append(tr.Notes, fmt.Sprintf("%d subscriber connections for %d nodes: nodes %d and up have no subscriber", tr.Connections, cfg.Nodes, tr.Connections))
			}
		}
	}
	name := fmt.Sprintf("[%d/%d] %s %s, %s, %s, rep %d", r.done, r.total, seriesOf(su), sh.scenario, tr.Shape, kind, rep)
	r.logf("%s: starting", name)
	tr.Failures = r.measure(ctx, &tr, name, profile)
	tr.OK = len(tr.Failures) == 0
	if tr.Seconds > 0 {
		tr.DeliveredPerSec = float64(tr.Delivered) / tr.Seconds
		tr.DeliveredMBPerSec = tr.DeliveredPerSec * float64(tr.PayloadBytes) / 1e6
	}
	if want := tr.PublishRate * float64(size); want > 0 && tr.OK && tr.DeliveredPerSec < 0.9*want {
		tr.Notes = append(tr.Notes, fmt.Sprintf("behind the pace: %.0f deliveries/s of %.0f; its latency includes queueing", tr.DeliveredPerSec, want))
	}
	if tr.OK {
		r.logf("%s: %s", name, tr.summary())
	} else {
		r.logf("%s: FAILED: %s", name, strings.Join(tr.Failures, "; "))
	}
	return tr
}

// measure runs a trial's server and worker through every step and fills in
// tr. It returns what went wrong, if anything.
func (r *runner) measure(ctx context.Context, tr *Trial, name string, profile profiles) (failures []string) {
	cfg := r.cfg
	fail := func(format string, args ...any) { failures = append(failures, fmt.Sprintf(format, args...)) }
	tgt, err := startTarget(cfg, tr.Variant, tr.Engine, tr.Subscribers, tr.Connections, (tr.Subscribers+tr.Connections-1)/tr.Connections, r.redis)
	if err != nil {
		fail("starting the server: %v", err)
		return failures
	}
	defer tgt.close()
	p := &pass{runner: r, tr: tr, name: name, local: cfg.Server == "", writes: -1}
	if t, ok := tgt.(*roomcastTarget); ok {
		p.writerStats = t.writerStats
	}
	if p.local {
		p.mem.EmptyBytes, _, p.mem.EmptyRSSBytes = idleMemory()
	}
	cutBefore, _ := tgt.cutOff()

	if p.w, err = startWorker(ctx, cfg, r.stderr); err != nil {
		fail("%v", err)
		return failures
	}
	defer func() {
		if err := p.w.close(); err != nil {
			fail("worker: %v", err)
		}
	}()
	var prefix [6]byte
	rand.Read(prefix[:])
	sp := &spec{
		Variant: tr.Variant, Addrs: tgt.addrs(), WebAddrs: webAddrsOf(tgt), PublishNode: cfg.publishNode(tr.Engine), Prefix: "bench." + hex.EncodeToString(prefix[:]),
		Subscribers: tr.Subscribers, Connections: tr.Connections, Rooms: tr.Rooms, Publishers: tr.Publishers,
		Payload: tr.PayloadBytes, Rate: tr.PublishRate, Window: tr.Window, Drain: drainTimeout,
		StreamWindow: r.cfg.StreamWindow, Publish: tr.Publish, FlushEvery: tr.FlushEvery,
	}
	if err := p.start(ctx, sp); err != nil {
		fail("%v", err)
	} else if err := p.window(ctx, profile); err != nil {
		fail("%v", err)
	}

	end, err := p.w.call(ctx, request{Op: opStop}, drainTimeout+stepTimeout)
	if err != nil {
		fail("%v", err)
	}
	failures = append(failures, end.Failures...)
	if n := end.Failed - len(end.Failures); n > 0 {
		fail("and %d more failures", n)
	}
	tr.Published = end.Published
	tr.Latency = end.Latency
	if tr.Cluster != nil {
		tr.Cluster.CrossNode, tr.Cluster.SameNode = end.CrossNode, end.SameNode
	}
	if cut, err := tgt.cutOff(); err == nil && cut > cutBefore {
		fail("the server cut off %d subscribers as slow consumers", cut-cutBefore)
	}
	if t, ok := tgt.(*roomcastTarget); ok && len(failures) == 0 {
		if st := t.stats(); st.Published != end.Published || st.Delivered != end.Delivered {
			fail("the server counted %d messages published and %d delivered; the worker %d and %d", st.Published, st.Delivered, end.Published, end.Delivered)
		}
	}
	if len(failures) == 0 && tr.Delivered == 0 {
		fail("no message was delivered while measuring")
	}
	if p.local && p.cpuOK && tr.Delivered > 0 {
		p.mem.PerStreamIdleStackBytes = float64(int64(p.subscribedStacks)-int64(p.connectedStacks)) / float64(tr.Subscribers)
		tr.Server = newServerStats(p.cpu, tr.Delivered, p.mem, tr.Connections+tr.Publishers, tr.Subscribers)
		if n := tr.PublishedPerSec * tr.Seconds; n > 0 {
			tr.Server.NsPerPublish = float64(p.cpu.Nanoseconds()) / n
		}
		if p.writes >= 0 {
			w := float64(p.writes) / float64(tr.Delivered)
			tr.Server.WriteSyscallsPerDelivery = &w
		}
		if p.writerStats != nil {
			d := float64(tr.Delivered)
			tr.Server.Writers = &WriterCounts{
				WakeupsPerDelivery: float64(p.writers.Wakeups) / d,
				PassesPerDelivery:  float64(p.writers.Passes) / d,
				HoldsPerDelivery:   float64(p.writers.Holds) / d,
				SendsPerDelivery:   float64(p.writers.Sends) / d,
				HoldMS:             heldMS(p.writers),
				Detaches:           p.writers.Detaches,
			}
		}
		if tr.Cluster != nil && tr.Seconds > 0 {
			tr.Cluster.CoresPerNode = p.cpu.Seconds() / tr.Seconds / float64(tr.Cluster.Nodes)
		}
	}
	if p.redisCPU != nil && tr.Cluster != nil && tr.Seconds > 0 {
		rs := &RedisStats{}
		for _, d := range p.redisCPU {
			rs.ServerCPUSeconds = append(rs.ServerCPUSeconds, d.Seconds())
			rs.CPUSeconds += d.Seconds()
		}
		rs.Cores = rs.CPUSeconds / tr.Seconds
		if n := tr.PublishedPerSec * tr.Seconds; n > 0 {
			rs.CPUUSPerPublish = rs.CPUSeconds * 1e6 / n
		}
		tr.Cluster.Redis = rs
	}
	return failures
}

// pass is one trial in progress.
type pass struct {
	*runner
	tr     *Trial
	name   string
	w      *workerConn
	local  bool // the server is in this process: measure its CPU and memory
	mem    MemoryStats
	cpu    time.Duration // the server's CPU time over the measurement window
	cpuOK  bool
	writes int64 // the server's write system calls over the window; -1 if unknown
	// writerStats reads a roomcast server's connection writers' counts; nil
	// for other servers. writers is their change over the window.
	writerStats func() server.WriterStats
	writers     server.WriterStats
	// redisCPU is each Redis server's CPU time over the window; nil if the
	// trial had no Redis or it could not be read.
	redisCPU []time.Duration

	connectedStacks, subscribedStacks uint64 // goroutine stacks, idle
}

// start connects and joins every subscriber, measuring the server's memory
// at each step, and starts publishing.
func (p *pass) start(ctx context.Context, sp *spec) error {
	if _, err := p.w.call(ctx, request{Op: opSetup, Spec: sp}, stepTimeout); err != nil {
		return err
	}
	if p.local {
		p.mem.ConnectedBytes, p.connectedStacks, p.mem.ConnectedRSSBytes = idleMemory()
	}
	if _, err := p.w.call(ctx, request{Op: opSubscribe}, joinTimeout(sp.Subscribers)+stepTimeout); err != nil {
		return err
	}
	if p.local {
		p.mem.SubscribedBytes, p.subscribedStacks, p.mem.SubscribedRSSBytes = idleMemory()
	}
	_, err := p.w.call(ctx, request{Op: opStart}, stepTimeout)
	return err
}

// window runs the warm-up, then the measurement window, profiled into
// profile if it is set.
func (p *pass) window(ctx context.Context, profile profiles) error {
	if err := p.watch(ctx, p.w, p.name, "warm-up", p.cfg.Warmup, nil); err != nil {
		return err
	}
	on, off := true, false
	redis := p.redis
	if p.tr.Engine != EngineRedis {
		redis = nil
	}
	var r0 []time.Duration
	if redis != nil {
		var err error
		if r0, err = redis.cpu(); err != nil {
			return err
		}
	}
	cpu0, ok0 := processCPU()
	w0, wok0 := writeSyscalls()
	var ws0 server.WriterStats
	if p.writerStats != nil {
		ws0 = p.writerStats()
	}
	t0 := time.Now()
	s0, err := p.w.call(ctx, request{Op: opSnap, Measure: &on, Profile: profile.worker}, snapTimeout)
	if err != nil {
		return err
	}
	if profile.server != "" {
		stop, err := startProfile(profile.server)
		if err != nil {
			return err
		}
		defer stop()
		p.tr.Profile = profile.server
	}
	busy := func() {
		total, _ := memInUse()
		p.mem.BusyPeakBytes = max(p.mem.BusyPeakBytes, total)
		if rss, ok := residentBytes(); ok {
			p.mem.BusyPeakRSSBytes = max(p.mem.BusyPeakRSSBytes, rss)
		}
	}
	if err := p.watch(ctx, p.w, p.name, "measurement", p.cfg.Duration, busy); err != nil {
		return err
	}
	busy() // at least once, however short the window
	cpu1, ok1 := processCPU()
	w1, wok1 := writeSyscalls()
	if p.writerStats != nil {
		p.writers = p.writerStats().Since(ws0)
	}
	p.tr.Seconds = time.Since(t0).Seconds()
	s1, err := p.w.call(ctx, request{Op: opSnap, Measure: &off}, snapTimeout)
	if err != nil {
		return err
	}
	if redis != nil {
		r1, err := redis.cpu()
		if err != nil {
			return err
		}
		for i := range r1 {
			p.redisCPU = append(p.redisCPU, r1[i]-r0[i])
		}
	}
	p.tr.PublishedPerSec = float64(s1.Published-s0.Published) / p.tr.Seconds
	p.cpu, p.cpuOK = cpu1-cpu0, ok0 && ok1
	if wok0 && wok1 {
		p.writes = int64(w1 - w0)
	}
	p.tr.Delivered = s1.Delivered - s0.Delivered
	if s0.CPUNanos >= 0 && s1.CPUNanos >= 0 && p.tr.Delivered > 0 {
		p.tr.Worker = newWorkerStats(time.Duration(s1.CPUNanos-s0.CPUNanos), p.tr.Delivered, s1.Frames-s0.Frames)
		if p.cfg.workerProcess() { // in process, the runtime is the server's too
			p.tr.Worker.Runtime = s1.Runtime
		}
	}
	return nil
}

// watch lets the trial run for d, asking the worker for its counters every
// progressEvery to report progress and to stop early on a failure. onTick,
// if set, runs at each.
func (r *runner) watch(ctx context.Context, w *workerConn, name, phase string, d time.Duration, onTick func()) error {
	end := time.NewTimer(d)
	defer end.Stop()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	start := time.Now()
	var last uint64
	var lastAt time.Time
	for {
		select {
		case <-end.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case now := <-tick.C:
			s, err := w.call(ctx, request{Op: opSnap}, snapTimeout)
			if err != nil {
				return err
			}
			if s.Failed > 0 {
				return fmt.Errorf("stopped during the %s, on the first failure", phase)
			}
			if onTick != nil {
				onTick()
			}
			switch {
			case lastAt.IsZero():
				last, lastAt = s.Delivered, now
			case now.Sub(lastAt) >= time.Second:
				rate := float64(s.Delivered-last) / now.Sub(lastAt).Seconds()
				r.logf("%s: %s %.0fs/%v: %.0f deliveries/s", name, phase, now.Sub(start).Seconds(), d, rate)
				last, lastAt = s.Delivered, now
			}
		}
	}
}

// profiles are where a trial writes CPU profiles of the server and of the
// worker process during its measurement; "" for none.
type profiles struct {
	server, worker string
}

// startProfile starts a CPU profile of the process into path and returns
// what stops it.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func newServerStats(cpu time.Duration, delivered uint64, mem MemoryStats, conns, streams int) *ServerStats {
	// Differences may be negative: the garbage collector is no exact scale.
	per := func(a, b uint64, n int) float64 { return float64(int64(a)-int64(b)) / float64(max(n, 1)) }
	mem.PerConnectionBytes = per(mem.ConnectedBytes, mem.EmptyBytes, conns)
	mem.PerStreamIdleBytes = per(mem.SubscribedBytes, mem.ConnectedBytes, streams)
	mem.PerStreamBusyBytes = per(mem.BusyPeakBytes, mem.ConnectedBytes, streams)
	if mem.EmptyRSSBytes > 0 && mem.ConnectedRSSBytes > 0 && mem.SubscribedRSSBytes > 0 {
		mem.PerConnectionRSSBytes = per(mem.ConnectedRSSBytes, mem.EmptyRSSBytes, conns)
		mem.PerStreamIdleRSSBytes = per(mem.SubscribedRSSBytes, mem.ConnectedRSSBytes, streams)
		mem.PerConnOneStreamRSSBytes = per(mem.SubscribedRSSBytes, mem.EmptyRSSBytes, conns)
	}
	return &ServerStats{
		CPUSeconds:           cpu.Seconds(),
		CPUSecondsPerMillion: cpu.Seconds() / (float64(delivered) / 1e6),
		NsPerDelivery:        float64(cpu.Nanoseconds()) / float64(delivered),
		Memory:               mem,
	}
}

// newWorkerStats is the worker's cost; frames is 0 when its subscribers
// cannot count responses (the client package delivers messages one by one).
func newWorkerStats(cpu time.Duration, delivered, frames uint64) *WorkerStats {
	w := &WorkerStats{CPUSeconds: cpu.Seconds(), NsPerDelivery: float64(cpu.Nanoseconds()) / float64(delivered)}
	if frames > 0 {
		w.MessagesPerFrame = float64(delivered) / float64(frames)
	}
	return w
}

func hostInfo(cfg Config) Host {
	return Host{
		GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(), GoVersion: runtime.Version(),
		WorkerProcess: cfg.workerProcess(), ServerInProcess: cfg.Server == "",
	}
}

// heldMS is the average hold of ws, in ms; 0 without holds.
func heldMS(ws server.WriterStats) float64 {
	if ws.Holds == 0 {
		return 0
	}
	return float64(ws.Held) / float64(ws.Holds) / 1e6
}
