package broker

import (
	"context"
	"fmt"
	"math"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/wire"
)

// This file is the hub's side of an external engine (see Engine): what
// Publish, joins, History and Presence do when rooms are sequenced
// elsewhere. A room is then held on a node only while the node has
// subscribers of it, and its ring is a cache of the tail of the engine's
// order, filled by Deliver.
//
// A room's life on a node, with an engine:
//
//	created by the first BeginJoin ──▶ tracking: Track under way; Deliver
//	   buffers in early, joins wait
//	        │ Track returned the head and the backfill
//	        ▼
//	     in sync: the ring holds the backfill and what Deliver brings; a
//	        │      join first waits for the ring to reach the engine's head
//	        │      (one round trip: catchUp), and one resuming from further
//	        │      back than the ring holds has Read fill it in (backfill)
//	        │ the last subscriber leaves
//	        ▼
//	     freed, and Untrack (under the shard's lock, so a new incarnation's
//	     Track always comes after it)

// EngineFunc makes the engine a hub runs on, for New.
type EngineFunc func(EngineConfig) (Engine, error)

// EngineConfig is what a hub tells the engine it makes: where to deliver,
// and the hub's history limits, which the engine's history must keep to, so
// that a resume is recovered on every node alike.
type EngineConfig struct {
	Sink            Sink          // the hub
	HistoryMessages int           // WithHistory's messages
	HistoryTTL      time.Duration // WithHistory's age
	PresenceMembers int           // WithPresenceLimit's
	KeyWindow       time.Duration // WithIdempotency's window: for a KeyedPublisher
	KeysPerRoom     int           // WithIdempotency's keys per room: for a KeyedPublisher
}

// tracking is a room's sync with its engine. Guarded by room.mu, but for
// done, which is closed once and read by anyone.
type tracking struct {
	started bool          // a join called Track
	synced  bool          // Track returned: Deliver appends
	done    chan struct{} // closed when Track returned
	err     error         // Track's error: the room cannot be joined
	early   []early       // delivered before Track returned
}

// early is what the engine delivered for a room whose Track had not
// returned: an entry, or a reset.
type early struct {
	entry Entry
	reset bool
	head  Position // of a reset
}

// buffer keeps x until Track returns. Past maxEarly what is buffered is
// dropped at once, rather than one entry a delivery (a copy of the whole
// buffer each time): the room then starts after a gap, which shows as any
// gap does. Caller holds the room's lock.
func (t *tracking) buffer(x early) {
	if len(t.early) == maxEarly {
		clear(t.early)
		t.early = t.early[:0]
	}
	t.early = append(t.early, x)
}

func newTracking() *tracking { return &tracking{done: make(chan struct{})} }

// removeMember takes a leaving subscriber off room's presence in the engine,
// on a goroutine of the hub's, since whoever serves the subscriber must not
// wait for it.
func (b *Hub) removeMemberFromEngine(room, session string) {
	b.spawn(func() {
		ctx, cancel := context.WithTimeout(b.life, 10*time.Second)
		defer cancel()
		b.engine.RemoveMember(ctx, room, session) // a failure leaves it to the engine's presence expiry
	})
}

// spawn runs fn on a goroutine that Close waits for, and reports false,
// running nothing, once Close has begun.
func (b *Hub) spawn(fn func()) bool {
	b.workersMu.Lock()
	defer b.workersMu.Unlock()
	if b.closing {
		return false
	}
	b.workers.Add(1)
	go func() {
		defer b.workers.Done()
		fn()
	}()
	return true
}

// maxEarly bounds what a room buffers while Track is under way; past it the
// buffer is dropped, and the room starts after a gap it reports as such.
const maxEarly = 4096

// publishToEngine is Publish with an engine: encode once, without the
// offset, and let the engine sequence and spread it.
func (b *Hub) publishToEngine(ctx context.Context, msg *roomcastv1.Message, exclude string) (uint64, string, error) {
	body, err := b.encodeForEngine(msg)
	if err != nil {
		return 0, "", err
	}
	return b.engine.Publish(ctx, msg.GetRoom(), body, exclude)
}

// encodeForEngine encodes msg once, without its offset, stamped now.
func (b *Hub) encodeForEngine(msg *roomcastv1.Message) ([]byte, error) {
	msg.Offset = 0
	stamp(msg, time.Now())
	body, err := proto.Marshal(msg)
	if err != nil {
		return nil, err
	}
	b.stats.encoded.Add(1)
	return body, nil
}

// prepareJoin does, off the caller's goroutine, what p needs from the
// engine, then marks it ready: the room tracked, and the ring filled back to
// p's position if that is further back than the ring reaches.
func (b *Hub) prepareJoin(ctx context.Context, p *PendingJoin, ready func()) {
	defer func() {
		// A panic in work a client's join started fails that join only.
		if v := recover(); v != nil && !p.ready.Load() {
			p.err = fmt.Errorf("broker: preparing the join of %q failed: %v", p.room.name, v)
			p.ready.Store(true)
			ready()
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer context.AfterFunc(b.life, cancel)()
	defer cancel()
	var cold bool
	cold, p.err = b.track(ctx, p.room, p.opts.Position)
	if p.err == nil && !cold {
		p.err = b.catchUp(ctx, p.room)
	}
	if p.err == nil {
		p.err = b.backfill(ctx, p.room, p.opts.Position)
	}
	if p.err == nil && p.opts.Presence {
		p.err = b.engine.AddMember(ctx, p.room.name, p.s.id, p.opts.Info)
	}
	p.ready.Store(true)
	ready()
}

// track makes sure r is tracked, calling Track if no one has yet (cold is
// then true), and waiting for whoever did otherwise.
func (b *Hub) track(ctx context.Context, r *room, from *Position) (cold bool, err error) {
	r.mu.Lock()
	t := r.tracking
	first := !t.started
	t.started = true
	r.mu.Unlock()
	if !first {
		select {
		case <-t.done:
			return false, t.err
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return true, b.startTracking(ctx, r, t, from)
}

// catchUp waits until r's ring holds every entry the engine had sequenced
// when it is called, so that a join on a warm room starts after every
// publish acknowledged before it, on any node, as one on a cold room does.
// It costs a round trip.
func (b *Hub) catchUp(ctx context.Context, r *room) error {
	head, _, err := b.engine.Read(ctx, r.name, math.MaxUint64, 0, false)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.epoch != head.Epoch || r.msgs.head >= head.Offset {
		r.mu.Unlock()
		return nil // there, or a new epoch that the resume rule will see
	}
	reached := make(chan struct{})
	r.catchUps = append(r.catchUps, catchUp{head.Offset, reached})
	r.mu.Unlock()
	select {
	case <-reached:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// catchUp is a join waiting for its room's ring to reach offset.
type catchUp struct {
	offset  uint64
	reached chan struct{}
}

// releaseCatchUps lets go the joins waiting for what r holds now, or for a
// sequence that restarted. Caller holds r.mu for writing.
func (r *room) releaseCatchUps(restarted bool) {
	kept := r.catchUps[:0]
	for _, c := range r.catchUps {
		if restarted || c.offset <= r.msgs.head {
			close(c.reached)
		} else {
			kept = append(kept, c)
		}
	}
	clear(r.catchUps[len(kept):])
	r.catchUps = kept
}

// startTracking calls Track for r and fills its ring from what it returns
// and what was delivered meanwhile.
func (b *Hub) startTracking(ctx context.Context, r *room, t *tracking, from *Position) error {
	head, entries, err := b.engine.Track(ctx, r.name, from, b.cfg.backlogMessages)
	r.mu.Lock()
	defer r.mu.Unlock()
	defer close(t.done)
	t.synced = err == nil
	if err != nil {
		t.err = err
		return err
	}
	r.epoch = head.Epoch
	start := head.Offset + 1
	if len(entries) > 0 && entries[0].Epoch == head.Epoch && entries[len(entries)-1].Offset == head.Offset {
		start = entries[0].Offset
	}
	r.msgs.first, r.msgs.head = start, start-1
	for _, e := range entries {
		b.deliverLocked(r, e)
	}
	for _, x := range t.early {
		if x.reset {
			b.resetLocked(r, x.head)
		} else {
			b.deliverLocked(r, x.entry)
		}
	}
	t.early = nil
	return nil
}

// backfill fills r's ring back to from when from is of the room's epoch and
// further back than the ring reaches, so the resume rule can recover it.
func (b *Hub) backfill(ctx context.Context, r *room, from *Position) error {
	r.mu.RLock()
	need := from != nil && (from.Epoch == "" || from.Epoch == r.epoch) && from.Offset+1 < r.msgs.first && from.Offset < r.msgs.head
	first, epoch := r.msgs.first, r.epoch
	r.mu.RUnlock()
	if !need || first-1-from.Offset > uint64(b.cfg.backlogMessages) {
		return nil // nothing to fill, or too far back to resume anyway
	}
	_, entries, err := b.engine.Read(ctx, r.name, from.Offset, int(first-1-from.Offset), false)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead || r.epoch != epoch {
		return nil // the room restarted or was closed meanwhile: FinishJoin will say so
	}
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.Epoch != epoch || e.Offset+1 != r.msgs.first || !r.msgs.prepend(b.entryOf(e), b.cfg.backlogBytes, b.maxSlots) {
			break
		}
	}
	return nil
}

// deliverLocked is Deliver for a tracked room. Caller holds r.mu for
// writing.
func (b *Hub) deliverLocked(r *room, e Entry) {
	switch {
	case e.Offset == 0: // not an offset any sequencer gives
		return
	case e.Epoch != r.epoch:
		r.restart(e.Epoch, e.Offset)
	case e.Offset <= r.msgs.head:
		return
	case e.Offset > r.msgs.head+1:
		r.restart(r.epoch, e.Offset)
	}
	b.stats.received.Add(1)
	r.msgs.append(b.entryOf(e), nil, b.retention(r), b.cfg.backlogBytes, b.maxSlots)
	r.wake()
	if len(r.catchUps) > 0 {
		r.releaseCatchUps(false)
	}
}

// entryOf builds the shared entry of e: its body with the offset appended.
func (b *Hub) entryOf(e Entry) entry {
	buf := wire.MessageEntryAt(e.Body, e.Offset)
	return entry{buf: mem.SliceBuffer(buf), size: len(buf), time: e.Time, exclude: e.Exclude}
}

// historyFromEngine is History with an engine: always read from the engine,
// so a publish acknowledged by any node is seen at once.
func (b *Hub) historyFromEngine(ctx context.Context, room string, after uint64, limit, maxBytes int, newestFirst bool) (mem.BufferSlice, error) {
	if b.cfg.historyMessages == 0 {
		limit = 0 // history off: the engine keeps entries only to heal gaps
	}
	head, entries, err := b.engine.Read(ctx, room, after, limit, newestFirst)
	if err != nil {
		return nil, err
	}
	bufs := make([]mem.Buffer, 0, len(entries)+1) // and wire.History's trailer
	size := 0
	for _, e := range entries {
		buf := wire.MessageEntryAt(e.Body, e.Offset)
		if size += len(buf); maxBytes > 0 && size > maxBytes && len(bufs) > 0 {
			break
		}
		bufs = append(bufs, mem.SliceBuffer(buf))
	}
	return wire.History(bufs, head.Offset, head.Epoch), nil
}
