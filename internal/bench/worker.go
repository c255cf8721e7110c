package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// ServeWorker runs a benchmark worker: it reads requests from the parent
// (Run) on in, one JSON object per line, and writes one reply per request on
// out. It returns nil when in ends, once every connection is closed.
func ServeWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	return serveWorker(ctx, in, out, workerHooks{})
}

// workerHooks inject faults, for tests.
type workerHooks struct {
	// drop, if set, is asked about every message a subscriber receives
	// (n counts them from 1); a message it returns true for is ignored as
	// if it never arrived.
	drop func(sub int, n uint64) bool
}

// driver is one messaging system's publishers and subscribers.
type driver interface {
	// connect opens the connections.
	connect(ctx context.Context) error
	// subscribe opens every subscriber and joins it to its room; it
	// returns once all are joined.
	subscribe(ctx context.Context) error
	// publisher returns publisher p's connection, to publish from up to
	// lanes goroutines at once.
	publisher(p int) (pub publishFunc, lanes int)
	// close ends every subscriber and closes every connection.
	close()
}

// publishFunc publishes payload to r.
type publishFunc func(ctx context.Context, r *room, payload []byte) error

// subscriber is one subscriber's state. Its receiving goroutine owns every
// field but ack and count.
type subscriber struct {
	id     int
	room   *room
	node   int    // the index of the node its connection is to
	n      uint64 // messages received, dropped ones included
	last   uint64 // roomcast: the highest offset received
	seqs   []uint64
	hist   histogram     // latencies, of messages published on its node when there are several
	cross  histogram     // latencies of messages published on another node
	ack    atomic.Uint64 // messages of the room accounted for: offsets past the join, or publishers' sequence numbers
	count  atomic.Uint64 // messages received and accepted
	frames atomic.Uint64 // responses (raw decoder) or NATS messages received; 0 on the client package
}

// worker hosts one trial's publishers and subscribers.
type worker struct {
	spec      spec
	hooks     workerHooks
	base      time.Time // latencies are measured on its monotonic clock
	rooms     []*room
	subs      []*subscriber
	drv       driver
	pubNodes  []int // each publisher's node
	measuring atomic.Bool
	draining  atomic.Bool
	progress  chan struct{} // 1-buffered: a subscriber moved while draining

	failMu   sync.Mutex
	failures []string
	failed   int

	pubCancel context.CancelFunc
	pubs      sync.WaitGroup
	stopProf  func()          // stops the CPU profile a snap started; nil when none runs
	rt0       runtimeSnapshot // the runtime's counters when measuring began
}

// maxFailures is how many failure messages a worker keeps.
const maxFailures = 20

func serveWorker(ctx context.Context, in io.Reader, out io.Writer, hooks workerHooks) error {
	c := newLineConn(in, out)
	var w *worker
	defer func() {
		if w != nil {
			w.shutdown()
		}
	}()
	for {
		req, err := c.next()
		if err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		rep := reply{Op: req.Op}
		switch {
		case req.Op == opSetup && w == nil && req.Spec != nil:
			w, err = newWorker(*req.Spec, hooks)
			if err == nil {
				err = w.drv.connect(ctx)
			}
		case w == nil:
			err = fmt.Errorf("%q before setup", req.Op)
		case req.Op == opSubscribe:
			err = w.drv.subscribe(ctx)
		case req.Op == opStart:
			w.startPublishers(ctx)
		case req.Op == opSnap:
			if req.Measure != nil {
				w.measuring.Store(*req.Measure)
				if !*req.Measure && w.rt0 != nil { // before the profile is written
					rep.Runtime, w.rt0 = readRuntime().since(w.rt0), nil
				}
				w.profile(*req.Measure, req.Profile)
				if *req.Measure {
					w.rt0 = readRuntime()
				}
			}
		case req.Op == opStop:
			w.measuring.Store(false)
			w.profile(false, "")
			w.stopPublishers()
			err = w.drain(ctx)
			w.shutdown() // every receiving goroutine ends: the histograms are settled
			rep.Latency, rep.SameNode, rep.CrossNode = w.latency()
		default:
			err = fmt.Errorf("unknown request %q", req.Op)
		}
		if err != nil {
			rep.Error = err.Error()
		}
		if w != nil {
			rep.Published, rep.Delivered, rep.Frames = w.counts()
			rep.Failures, rep.Failed = w.failureList()
		}
		rep.CPUNanos = -1
		if cpu, ok := processCPU(); ok {
			rep.CPUNanos = cpu.Nanoseconds()
		}
		if err := c.send(rep); err != nil {
			return err
		}
	}
}

func newWorker(s spec, hooks workerHooks) (*worker, error) {
	if s.Subscribers < s.Rooms || s.Rooms < 1 || s.Connections < 1 || s.Publishers < 1 || s.Payload < minPayload || s.Window < 1 ||
		len(s.Addrs) == 0 || s.PublishNode < -1 || s.PublishNode >= len(s.Addrs) ||
		s.Variant != VariantNATS && s.Publish != PublishUnary && s.Publish != PublishStream {
		return nil, fmt.Errorf("bad spec %+v", s)
	}
	w := &worker{spec: s, hooks: hooks, base: time.Now(), progress: make(chan struct{}, 1)}
	for p := range s.Publishers {
		n := s.PublishNode
		if n < 0 {
			n = p % len(s.Addrs)
		}
		w.pubNodes = append(w.pubNodes, n)
	}
	for i := range s.Rooms {
		w.rooms = append(w.rooms, newRoom(i, fmt.Sprintf("%s.r%d", s.Prefix, i), s.Window))
	}
	for i := range s.Subscribers {
		r := w.rooms[i%s.Rooms]
		sub := &subscriber{id: i, room: r, node: w.connNode(w.subConn(i)), seqs: make([]uint64, s.Publishers)}
		r.subs = append(r.subs, sub)
		w.subs = append(w.subs, sub)
	}
	switch s.Variant {
	case VariantRoomcast, VariantEncodeEach:
		w.drv = newClientDriver(w)
	case VariantRawDecode:
		w.drv = newGRPCDriver(w)
	case VariantNATS:
		w.drv = newNATSDriver(w)
	case VariantWatch:
		w.drv = newWatchDriver(w)
	default:
		return nil, fmt.Errorf("unknown variant %q", s.Variant)
	}
	return w, nil
}

// subConn is the index of subscriber i's connection.
func (w *worker) subConn(i int) int { return i % w.spec.Connections }

// connNode is the index of the node subscriber connection i is to.
func (w *worker) connNode(i int) int { return i % len(w.spec.Addrs) }

// now is the time on the worker's clock, for latencies.
func (w *worker) now() int64 { return int64(time.Since(w.base)) }

// fail records something wrong that fails the trial.
func (w *worker) fail(format string, args ...any) {
	w.failMu.Lock()
	defer w.failMu.Unlock()
	w.failed++
	if len(w.failures) < maxFailures {
		w.failures = append(w.failures, fmt.Sprintf(format, args...))
	}
}

func (w *worker) failureList() ([]string, int) {
	w.failMu.Lock()
	defer w.failMu.Unlock()
	return append([]string(nil), w.failures...), w.failed
}

func (w *worker) counts() (published, delivered, frames uint64) {
	for _, r := range w.rooms {
		published += r.published.Load()
	}
	for _, s := range w.subs {
		delivered += s.count.Load()
		frames += s.frames.Load()
	}
	return published, delivered, frames
}

// Every payload starts with its publish time on the worker's clock, the
// publisher's sequence number for the room and the publisher's index.
func putHeader(b []byte, ts int64, seq uint64, pub int) {
	binary.LittleEndian.PutUint64(b[0:], uint64(ts))
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint32(b[16:], uint32(pub))
}

func getHeader(b []byte) (ts int64, seq uint64, pub int, ok bool) {
	if len(b) < minPayload {
		return 0, 0, 0, false
	}
	return int64(binary.LittleEndian.Uint64(b[0:])), binary.LittleEndian.Uint64(b[8:]), int(binary.LittleEndian.Uint32(b[16:])), true
}

// received is one message as a subscriber got it.
type received struct {
	offset uint64 // roomcast only
	ts     int64
	seq    uint64
	pub    int
	size   int  // payload bytes
	badHdr bool // payload too short, or of another room
}

// accept checks a batch of messages one subscriber received at time now:
// with offsets (roomcast), they must follow the last one with no gap; without
// (NATS), each publisher's sequence numbers must.
func (w *worker) accept(s *subscriber, msgs []received, offsets bool, now int64) {
	measuring := w.measuring.Load()
	var accepted uint64
	oldAck := s.ack.Load()
	ack := oldAck
	for i := range msgs {
		m := &msgs[i]
		s.n++
		if w.hooks.drop != nil && w.hooks.drop(s.id, s.n) {
			continue
		}
		if m.badHdr || m.size != w.spec.Payload || m.pub < 0 || m.pub >= len(s.seqs) {
			w.fail("subscriber %d (%s): malformed message %d: payload of %d bytes, publisher %d", s.id, s.room.name, s.n, m.size, m.pub)
			continue
		}
		if offsets {
			switch {
			case m.offset == s.last+1:
			case m.offset <= s.last:
				w.fail("subscriber %d (%s): offset %d after %d: duplicate or out of order", s.id, s.room.name, m.offset, s.last)
				continue
			default:
				w.fail("subscriber %d (%s): offset %d after %d: %d missing (lost)", s.id, s.room.name, m.offset, s.last, m.offset-s.last-1)
			}
			ack += m.offset - s.last
			s.last = m.offset
		} else {
			last := &s.seqs[m.pub]
			switch {
			case m.seq == *last+1:
			case m.seq <= *last:
				w.fail("subscriber %d (%s): publisher %d's message %d after %d: duplicate or out of order", s.id, s.room.name, m.pub, m.seq, *last)
				continue
			default:
				w.fail("subscriber %d (%s): publisher %d's message %d after %d: %d missing (lost)", s.id, s.room.name, m.pub, m.seq, *last, m.seq-*last-1)
			}
			ack += m.seq - *last
			*last = m.seq
		}
		accepted++
		if measuring {
			if w.pubNodes[m.pub] == s.node {
				s.hist.record(now - m.ts)
			} else {
				s.cross.record(now - m.ts)
			}
		}
	}
	s.count.Add(accepted)
	if ack != oldAck {
		s.ack.Store(ack)
		s.room.advance(oldAck, ack)
		if w.draining.Load() {
			select {
			case w.progress <- struct{}{}:
			default:
			}
		}
	}
}

// startPublishers starts every publisher: publisher p publishes to the rooms
// whose index is p modulo the number of publishers (or, with fewer rooms
// than publishers, to room p modulo the rooms), in turn.
func (w *worker) startPublishers(ctx context.Context) {
	ctx, w.pubCancel = context.WithCancel(ctx)
	n := w.spec.Publishers
	for p := range n {
		var rooms []*room
		for i, r := range w.rooms {
			if i%n == p {
				rooms = append(rooms, r)
			}
		}
		if len(rooms) == 0 {
			rooms = []*room{w.rooms[p%len(w.rooms)]}
		}
		pub, lanes := w.drv.publisher(p)
		w.pubs.Add(1)
		go func() {
			defer w.pubs.Done()
			w.publish(ctx, p, rooms, pub, lanes)
		}()
	}
}

// job is one message a publisher's dispatcher hands to a lane. Its publish
// time is stamped when the lane sends it: latency is publish to delivery,
// not including any delay of the publisher's own.
type job struct {
	room *room
	seq  uint64
}

// publish runs publisher p until ctx is done: it waits for the pace and the
// flow-control window, then publishes, from lanes goroutines.
func (w *worker) publish(ctx context.Context, p int, rooms []*room, pub publishFunc, lanes int) {
	jobs := make(chan job, lanes)
	// Not cancelled with the publishers: a reserved message must be
	// published for the drain to end. The driver bounds a call.
	pubCtx := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for range lanes {
		wg.Go(func() {
			payload := make([]byte, w.spec.Payload)
			for j := range jobs {
				putHeader(payload, w.now(), j.seq, p)
				if err := pub(pubCtx, j.room, payload); err != nil {
					w.fail("publisher %d (%s): %v", p, j.room.name, err)
				}
			}
		})
	}
	defer wg.Wait()
	defer close(jobs)

	var interval float64 // ns between messages, 0 for saturation
	if w.spec.Rate > 0 {
		interval = 1e9 * float64(w.spec.Publishers) / w.spec.Rate
	}
	start := w.now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	seqs := make([]uint64, len(rooms))
	for i := 0; ctx.Err() == nil; i++ {
		k := i % len(rooms)
		if interval > 0 {
			due := start + int64(float64(i)*interval)
			if wait := time.Duration(due - w.now()); wait > 50*time.Microsecond {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
		}
		if err := rooms[k].reserve(ctx); err != nil {
			return
		}
		seqs[k]++
		jobs <- job{room: rooms[k], seq: seqs[k]}
	}
}

// profile starts a CPU profile of the process into path when on and path
// is not "", or stops the one running when not on. A profile that cannot
// start is left out: the trial goes on without it.
func (w *worker) profile(on bool, path string) {
	if w.stopProf != nil {
		w.stopProf()
		w.stopProf = nil
	}
	if on && path != "" {
		w.stopProf, _ = startProfile(path)
	}
}

func (w *worker) stopPublishers() {
	if w.pubCancel != nil {
		w.pubCancel()
		w.pubs.Wait()
		w.pubCancel = nil
	}
}

// drain waits until every subscriber has accounted for everything its room
// was sent, or fails the trial after spec.Drain.
func (w *worker) drain(ctx context.Context) error {
	w.draining.Store(true)
	deadline := time.NewTimer(w.spec.Drain)
	defer deadline.Stop()
	for {
		behind, missing := 0, uint64(0)
		for _, s := range w.subs {
			if want, got := s.room.published.Load(), s.ack.Load(); got < want {
				behind++
				missing += want - got
			}
		}
		if behind == 0 {
			return nil
		}
		select {
		case <-w.progress:
		case <-deadline.C:
			w.fail("%d subscribers still missed %d messages %v after publishing stopped", behind, missing, w.spec.Drain)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// latency merges the subscribers' latencies: all of them, and with several
// nodes, those of messages received on the node they were published to
// and on another. Call it only once the subscribers are closed.
func (w *worker) latency() (all, sameNode, crossNode *LatencyStats) {
	var same, cross histogram
	for _, s := range w.subs {
		same.merge(&s.hist)
		cross.merge(&s.cross)
	}
	if len(w.spec.Addrs) == 1 {
		return same.stats(), nil, nil
	}
	var h histogram
	h.merge(&same)
	h.merge(&cross)
	return h.stats(), same.stats(), cross.stats()
}

// shutdown stops the publishers, then closes every subscriber and
// connection. It is idempotent.
func (w *worker) shutdown() {
	w.profile(false, "")
	w.stopPublishers()
	w.drv.close()
}
