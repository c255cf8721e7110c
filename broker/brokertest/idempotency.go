package brokertest

import (
	"context"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
)

// The promise of idempotency keys, as every engine that keeps them must
// keep it: a publish whose key its owner already used in the same room,
// within the window and while the room keeps its epoch, appends nothing and
// returns the first one's offset and epoch; keys are per owner and per
// room; a room remembers at most its cap of keys, forgetting the oldest
// first. (How a room's epoch ends differs by engine, so the suite does not
// make one end; engines test that on their own.)
var idempotencyCases = []testCase{
	{"a retry appends nothing", testKeyedRetry},
	{"keys are per owner and per room", testKeyScopes},
	{"the cap forgets the oldest key", testKeyCap},
	{"a key expires after the window", testKeyWindow},
}

// publishKeyed publishes text to room as owner with key, failing the test
// if that fails.
func publishKeyed(t testing.TB, h *broker.Hub, owner, room, text, key string) (uint64, string) {
	t.Helper()
	ctx := broker.WithOwner(t.Context(), owner)
	off, epoch, err := h.PublishWith(ctx, textMessage(room, text), broker.PublishOptions{IdempotencyKey: key})
	if err != nil {
		t.Fatalf("publishing %q to %s with key %q: %v", text, room, key, err)
	}
	return off, epoch
}

// A retried publish returns the first one's offset and epoch and reaches
// no subscriber: the sentinel is the next message after the first.
func testKeyedRetry(t *testing.T, newHub Factory) {
	h := newHub(t)
	s := newReader(t, h, "S")
	s.join("r", broker.JoinOptions{})
	off, epoch := publishKeyed(t, h, "alice", "r", "a", "k")
	for i := range 3 {
		if o, e := publishKeyed(t, h, "alice", "r", "a again", "k"); o != off || e != epoch {
			t.Fatalf("retry %d: offset %d epoch %q, want the first's %d %q", i, o, e, off, epoch)
		}
	}
	publish(t, h, "r", "sentinel", "")
	s.expect("r/1:a", "r/2:sentinel")
	if st := h.Stats(); st.Deduplicated != 3 {
		t.Errorf("stats count %d deduplicated publishes, want 3", st.Deduplicated)
	}
}

// The same key from another owner, or in another room, is another key.
func testKeyScopes(t *testing.T, newHub Factory) {
	h := newHub(t)
	a, _ := publishKeyed(t, h, "alice", "r", "alice's", "k")
	b, _ := publishKeyed(t, h, "bob", "r", "bob's", "k")
	if a == b {
		t.Fatalf("alice's and bob's publishes with the same key both got offset %d", a)
	}
	if o, _ := publishKeyed(t, h, "bob", "r", "bob's again", "k"); o != b {
		t.Errorf("bob's retry: offset %d, want %d", o, b)
	}
	if o, _ := publishKeyed(t, h, "alice", "other", "in another room", "k"); o != 1 {
		t.Errorf("the key in another room: offset %d, want 1 (a first publish)", o)
	}
	if got := msgTexts(history(t, h, "r", 0, 10, false).GetMessages()); len(got) != 2 {
		t.Errorf("room r holds %v, want alice's and bob's only", got)
	}
}

// At its cap a room forgets its oldest key first.
func testKeyCap(t *testing.T, newHub Factory) {
	h := newHub(t, broker.WithIdempotency(time.Hour, 2))
	for i, k := range []string{"k1", "k2", "k3"} {
		if o, _ := publishKeyed(t, h, "alice", "r", k, k); o != uint64(i+1) {
			t.Fatalf("%s: offset %d, want %d", k, o, i+1)
		}
	}
	if o, _ := publishKeyed(t, h, "alice", "r", "k3 again", "k3"); o != 3 {
		t.Errorf("k3, the newest, again: offset %d, want 3", o)
	}
	if o, _ := publishKeyed(t, h, "alice", "r", "k1 again", "k1"); o != 4 {
		t.Errorf("k1, forgotten, again: offset %d, want 4 (a new message)", o)
	}
}

// Past the window a key is forgotten: its retry is a new message. The
// retries before that append nothing, so the first one that appends ends
// the wait.
func testKeyWindow(t *testing.T, newHub Factory) {
	h := newHub(t, broker.WithIdempotency(50*time.Millisecond, 100))
	first, _ := publishKeyed(t, h, "alice", "r", "first", "k")
	var off uint64
	waitFor(t, "the key expiring", func() bool {
		ctx := broker.WithOwner(context.Background(), "alice")
		o, _, err := h.PublishWith(ctx, textMessage("r", "retry"), broker.PublishOptions{IdempotencyKey: "k"})
		if err != nil {
			t.Fatal(err)
		}
		off = o
		return o != first
	})
	if off != first+1 {
		t.Errorf("the retry past the window: offset %d, want %d", off, first+1)
	}
}
