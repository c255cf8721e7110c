package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// publishKey publishes text to room as owner with key, and returns the
// offset and epoch.
func publishKey(t *testing.T, b *broker.Hub, owner, room, text, key string) (uint64, string) {
	t.Helper()
	ctx := broker.WithOwner(context.Background(), owner)
	msg := &roomcastv1.Message{Room: room, Payload: &roomcastv1.Message_Text{Text: text}}
	off, epoch, err := b.PublishWith(ctx, msg, broker.PublishOptions{IdempotencyKey: key})
	if err != nil {
		t.Fatalf("PublishWith(%s, %q, key %q) as %s: %v", room, text, key, owner, err)
	}
	return off, epoch
}

// head returns a room's newest offset, from its history.
func head(t *testing.T, b *broker.Hub, room string) uint64 {
	t.Helper()
	return history(t, b, room, 0, 1, true).GetOffset()
}

// A retry with the same key, owner and room returns the first publish's
// offset and epoch and appends nothing; another owner's same key, another
// room, or no key at all append as usual.
func TestIdempotencyKeyAppendsOnce(t *testing.T) {
	b := newBroker(t)
	off, epoch := publishKey(t, b, "alice", "r", "one", "k1")
	if off != 1 || epoch == "" {
		t.Fatalf("first publish: offset %d, epoch %q", off, epoch)
	}
	for range 3 {
		if o, e := publishKey(t, b, "alice", "r", "one", "k1"); o != off || e != epoch {
			t.Fatalf("retry: offset %d epoch %q, want %d %q", o, e, off, epoch)
		}
	}
	if got := head(t, b, "r"); got != 1 {
		t.Fatalf("after retries the room's offset is %d, want 1: a retry appended", got)
	}
	if o, _ := publishKey(t, b, "bob", "r", "two", "k1"); o != 2 {
		t.Fatalf("bob's k1: offset %d, want 2 (keys are per owner)", o)
	}
	if o, _ := publishKey(t, b, "alice", "other", "x", "k1"); o != 1 {
		t.Fatalf("alice's k1 in another room: offset %d, want 1 (keys are per room)", o)
	}
	if o, _ := publishKey(t, b, "alice", "r", "three", ""); o != 3 {
		t.Fatalf("no key: offset %d, want 3", o)
	}
	if o, _ := publishKey(t, b, "alice", "r", "three", ""); o != 4 {
		t.Fatalf("no key again: offset %d, want 4 (no key, no deduplication)", o)
	}
	st := b.Stats()
	if st.Deduplicated != 3 || st.Keys != 3 {
		t.Fatalf("Deduplicated %d, Keys %d; want 3 and 3", st.Deduplicated, st.Keys)
	}
}

// A room at its cap forgets its oldest key to remember a new one.
func TestIdempotencyKeysPerRoomCap(t *testing.T) {
	b := newBroker(t, broker.WithIdempotency(time.Hour, 2))
	for i, k := range []string{"a", "b", "c"} {
		if o, _ := publishKey(t, b, "o", "r", k, k); o != uint64(i+1) {
			t.Fatalf("key %s: offset %d, want %d", k, o, i+1)
		}
	}
	if o, _ := publishKey(t, b, "o", "r", "c", "c"); o != 3 {
		t.Fatalf("retry of the newest key: offset %d, want 3", o)
	}
	if o, _ := publishKey(t, b, "o", "r", "a", "a"); o != 4 {
		t.Fatalf("retry of the oldest key past the cap: offset %d, want 4 (forgotten, appended again)", o)
	}
	if got := b.Stats().Keys; got != 2 {
		t.Fatalf("Keys = %d, want the cap, 2", got)
	}
}

// Keys expire after the window: the janitor forgets them and gives their
// bytes back, and the same key then appends again.
func TestIdempotencyKeysExpire(t *testing.T) {
	b := newBroker(t, broker.WithIdempotency(20*time.Millisecond, 100))
	publishKey(t, b, "o", "r", "x", "k")
	withKey := b.Stats().Retained
	waitFor(t, func() bool { return b.Stats().Keys == 0 }) // the janitor forgets the expired key
	if got := b.Stats().Retained; got >= withKey {
		t.Fatalf("Retained %d after the key expired, was %d with it: its bytes were not given back", got, withKey)
	}
	if o, _ := publishKey(t, b, "o", "r", "x", "k"); o != 2 {
		t.Fatalf("the same key after the window: offset %d, want 2", o)
	}
}

// Keys count against the owner's byte quota, so one owner cannot fill
// memory with keys.
func TestIdempotencyKeysCountAgainstOwnerQuota(t *testing.T) {
	// 10 rooms of one message of a few bytes each fit in 4 KiB; with
	// 128-byte keys they do not.
	b := newBroker(t, broker.WithOwnerQuotas(0, 4096), broker.WithBacklog(1024, 4096), broker.WithMaxRetainedBytes(1<<20))
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		ctx := broker.WithOwner(context.Background(), "mallory")
		msg := &roomcastv1.Message{Room: fmt.Sprint("r", i), Payload: &roomcastv1.Message_Text{Text: "x"}}
		_, _, err = b.PublishWith(ctx, msg, broker.PublishOptions{IdempotencyKey: strings.Repeat("k", broker.MaxIdempotencyKeyBytes)})
	}
	if !errors.Is(err, broker.ErrBytesQuota) {
		t.Fatalf("100 keyed publishes within a 4 KiB quota: %v, want ErrBytesQuota", err)
	}
	if o, _ := publishKey(t, b, "alice", "r0", "x", "k"); o != 2 {
		t.Fatalf("another owner: offset %d, want 2", o)
	}
}

// A room that is freed forgets its keys with its epoch, and gives their
// bytes back.
func TestIdempotencyKeysDieWithTheRoom(t *testing.T) {
	b := newBroker(t, broker.WithHistory(0, 0))
	s := b.NewSubscriber("S")
	if _, err := s.Join(context.Background(), "r", broker.JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	_, epoch := publishKey(t, b, "o", "r", "x", "k")
	if got := b.Stats().Keys; got != 1 {
		t.Fatalf("Keys = %d, want 1", got)
	}
	s.Close()
	if st := b.Stats(); st.Keys != 0 || st.Retained != 0 || st.Rooms != 0 {
		t.Fatalf("after the room was freed: %+v, want no keys, bytes or rooms", st)
	}
	s2 := b.NewSubscriber("S2")
	defer s2.Close()
	if _, err := s2.Join(context.Background(), "r", broker.JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	if o, e := publishKey(t, b, "o", "r", "x", "k"); o != 1 || e == epoch {
		t.Fatalf("the key in the room's next epoch: offset %d epoch %q (old %q), want offset 1 of a new epoch", o, e, epoch)
	}
}

func TestIdempotencyKeyTooLong(t *testing.T) {
	b := newBroker(t)
	msg := &roomcastv1.Message{Room: "r", Payload: &roomcastv1.Message_Text{Text: "x"}}
	_, _, err := b.PublishWith(context.Background(), msg, broker.PublishOptions{IdempotencyKey: strings.Repeat("k", broker.MaxIdempotencyKeyBytes+1)})
	if !errors.Is(err, broker.ErrKeyTooLong) {
		t.Fatalf("err = %v, want ErrKeyTooLong", err)
	}
}

// An engine-backed hub refuses keys, which it cannot honour alone, and
// still publishes without one.
func TestIdempotencyKeyUnsupportedWithEngine(t *testing.T) {
	e := &publishOnlyEngine{}
	b := newBroker(t, broker.WithEngine(func(broker.EngineConfig) (broker.Engine, error) { return e, nil }))
	msg := &roomcastv1.Message{Room: "r", Payload: &roomcastv1.Message_Text{Text: "x"}}
	_, _, err := b.PublishWith(context.Background(), msg, broker.PublishOptions{IdempotencyKey: "k"})
	if !errors.Is(err, broker.ErrKeysUnsupported) {
		t.Fatalf("err = %v, want ErrKeysUnsupported", err)
	}
	if e.published != 0 {
		t.Fatal("the keyed publish reached the engine")
	}
	if _, _, err := b.PublishWith(context.Background(), msg, broker.PublishOptions{}); err != nil || e.published != 1 {
		t.Fatalf("without a key: %v, %d publishes reached the engine", err, e.published)
	}
}

// publishOnlyEngine sequences publishes and does nothing else.
type publishOnlyEngine struct {
	broker.Engine // nil: any other method panics
	published     uint64
}

func (e *publishOnlyEngine) Publish(context.Context, string, []byte, string) (uint64, string, error) {
	e.published++
	return e.published, "E", nil
}

func (e *publishOnlyEngine) Ping(context.Context) error { return nil }

func (e *publishOnlyEngine) Close() error { return nil }

// FuzzIdempotencyKeys publishes a sequence of messages, each by one of two
// owners to one of two rooms with one of a few keys or none, and checks
// every offset against a model: a room appends a message unless the same
// owner's key is among the room's last keysPerRoom keys, and then returns
// the offset that key was first given.
func FuzzIdempotencyKeys(f *testing.F) {
	f.Add([]byte{0, 1, 2, 1, 9, 17, 1, 33, 2})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6})
	// One hub for every input, each input in rooms of its own: a new hub
	// per input would cost most of the time.
	const keysPerRoom = 4
	b := newBroker(f, broker.WithIdempotency(time.Hour, keysPerRoom), broker.WithMaxRooms(1<<22), broker.WithOwnerQuotas(1<<22, 0))
	var inputs atomic.Uint64
	f.Fuzz(func(t *testing.T, ops []byte) {
		input := inputs.Add(1)
		keysBefore := b.Stats().Keys
		type scoped struct{ owner, key string }
		type model struct {
			head    uint64
			offsets map[scoped]uint64
			order   []scoped
		}
		rooms := map[string]*model{}
		keys := 0
		for _, op := range ops {
			owner := fmt.Sprint("o", op&1)
			room := fmt.Sprint("f", input, ".r", op>>1&1)
			key := ""
			if k := op >> 2 & 7; k > 0 {
				key = fmt.Sprint("k", k)
			}
			m := rooms[room]
			if m == nil {
				m = &model{offsets: map[scoped]uint64{}}
				rooms[room] = m
			}
			want, seen := m.offsets[scoped{owner, key}]
			if key == "" || !seen {
				m.head++
				want = m.head
				if key != "" {
					if len(m.order) == keysPerRoom {
						delete(m.offsets, m.order[0])
						m.order = m.order[1:]
						keys--
					}
					m.offsets[scoped{owner, key}] = want
					m.order = append(m.order, scoped{owner, key})
					keys++
				}
			}
			if got, _ := publishKey(t, b, owner, room, "x", key); got != want {
				t.Fatalf("%s's publish to %s with key %q: offset %d, want %d", owner, room, key, got, want)
			}
		}
		if got := b.Stats().Keys - keysBefore; got != int64(keys) {
			t.Fatalf("the input added %d keys, want %d", got, keys)
		}
	})
}
