package serveconfig

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// Go's collector starts a cycle when the heap has grown by GOGC percent of
// the live heap (100: double). A server whose live heap is a few MB, which
// every server is until its rooms retain much, then collects every few MB
// it allocates: tens of cycles a second under publishes, each costing a
// fixed amount whatever the heap. serve --gc-headroom instead lets the
// heap grow by at least a fixed headroom between cycles while it is busy;
// when the live heap is larger than the headroom, and when the server is
// idle, the collector runs as it would by default. It is not on by
// default: 32 MiB cut a unary Publish's server CPU by 4 to 18% (three
// alternated batches of BenchmarkPublishServe on a shared, noisy machine),
// but left idle memory per stream a tenth higher
// (roomcast-bench, 2000 streams over 200 connections): the long-lived
// objects made while the heap had room are spread over more of it. (Going
// back to the default while the live heap grew did not help: a server
// opens its streams within one headroom's allocations.)

// gcIdlePeriod sets when the server counts as idle: when it allocates less
// than the headroom in this time, the headroom saves it little, and the
// collector goes back to its default, which lets the runtime return the
// headroom's memory to the system. The rate is judged by the bytes
// allocated between collections, not by the time between them, which the
// headroom itself lengthens.
const gcIdlePeriod = 10 * time.Second

// GCTuner sets the collector's GOGC after each collection so that a busy
// heap grows by at least a headroom between collections. It does nothing
// when the environment sets GOGC or GOMEMLIMIT: the operator's settings
// win. It runs on the runtime's cleanup goroutine, once per collection,
// and owns no goroutine. Close is safe for concurrent use and idempotent.
type GCTuner struct {
	headroom uint64
	now      func() time.Time

	mu      sync.Mutex
	closed  bool
	percent int       // what it last set
	last    time.Time // when the last collection it saw ended
	allocs  uint64    // the bytes allocated in all, then
	sample  []metrics.Sample
}

// gcSentinel is allocated after each collection and found unreachable by
// the next, which runs the tuner's cleanup. It holds a pointer, so it is
// never batched with other small objects (whose cleanups may not run).
type gcSentinel struct {
	_ *byte
	_ uint64
}

// StartGCTuner starts tuning the collector to headroom bytes (a positive
// number: serve's --gc-headroom), unless the environment sets GOGC
// or GOMEMLIMIT, in which case the tuner it returns does nothing
// (Active reports false).
func StartGCTuner(headroom int64) (*GCTuner, error) {
	if headroom <= 0 {
		return nil, fmt.Errorf("serveconfig: GC headroom must be positive, got %d", headroom)
	}
	t := &GCTuner{headroom: uint64(headroom), now: time.Now, percent: defaultGOGC, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/allocs:bytes"}}}
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		t.closed = true
		return t, nil
	}
	t.last = t.now()
	t.arm()
	return t, nil
}

// defaultGOGC is the collector's own default, which the tuner never goes
// below and returns to when idle or closed.
const defaultGOGC = 100

// Active reports whether t tunes the collector: it was started without
// GOGC or GOMEMLIMIT in the environment, and is not closed.
func (t *GCTuner) Active() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.closed
}

// Close stops the tuning and gives the collector its default GOGC back.
func (t *GCTuner) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	if t.percent != defaultGOGC {
		debug.SetGCPercent(defaultGOGC)
		t.percent = defaultGOGC
	}
	return nil
}

func (t *GCTuner) arm() {
	runtime.AddCleanup(new(gcSentinel), (*GCTuner).collected, t)
}

// collected runs after each collection: it sets GOGC for the live heap
// that collection left, and arms itself for the next.
func (t *GCTuner) collected() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	now := t.now()
	metrics.Read(t.sample)
	live, allocs := sampled(t.sample[0]), sampled(t.sample[1])
	if p := gcPercent(live, t.headroom, allocs-t.allocs, now.Sub(t.last)); p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
	t.last, t.allocs = now, allocs
	t.arm()
}

// sampled is s's value, or 0 if the runtime does not have it.
func sampled(s metrics.Sample) uint64 {
	if s.Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s.Value.Uint64()
}

// gcPercent is the GOGC that lets a heap of live bytes grow by headroom
// before the next collection, the server having allocated allocated bytes
// in the gap since the last one ended: never below the default, and the
// default when the server is idle (it allocates less than headroom per
// gcIdlePeriod).
func gcPercent(live, headroom, allocated uint64, gap time.Duration) int {
	idle := float64(allocated)*float64(gcIdlePeriod) < float64(headroom)*float64(gap)
	if idle || live >= headroom {
		return defaultGOGC
	}
	const most = 10_000 // a live heap of a few KB: no cycle is worth 100 times that
	return int(min(max(headroom*100/max(live, 1), defaultGOGC), most))
}
