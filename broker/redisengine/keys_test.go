package redisengine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/internal/redistest"
)

// Two nodes' engines on one Redis share a room's keys: a retry through the
// other node returns the first offset and appends nothing; another owner's
// equal key is another key.
func TestKeysAreSharedByEveryNode(t *testing.T) {
	srv := redistest.Start(t)
	a := newEngine(t, redisengine.Config{}, srv)
	b := newEngine(t, redisengine.Config{}, srv)
	alice := broker.IdempotencyKey{Owner: "alice", Key: "k"}
	off, epoch, dup, err := a.PublishKeyed(testCtx(t), "r", []byte("first"), "", alice)
	if err != nil || off != 1 || dup {
		t.Fatalf("first: %d/%s dup %v, %v; want 1, not a duplicate", off, epoch, dup, err)
	}
	o, e, dup, err := b.PublishKeyed(testCtx(t), "r", []byte("retry"), "", alice)
	if err != nil || o != off || e != epoch || !dup {
		t.Fatalf("retry on the other node: %d/%s dup %v, %v; want %d/%s, a duplicate", o, e, dup, err, off, epoch)
	}
	// "alice" with key "k" must not meet an owner "alic" with key "ek".
	for _, k := range []broker.IdempotencyKey{{Owner: "bob", Key: "k"}, {Owner: "alic", Key: "ek"}} {
		if o, _, dup, err := b.PublishKeyed(testCtx(t), "r", []byte(k.Owner), "", k); err != nil || dup {
			t.Fatalf("%+v: offset %d dup %v, %v; want a new message", k, o, dup, err)
		}
	}
	head, entries, err := a.Read(testCtx(t), "r", 0, 10, false)
	if err != nil || head.Offset != 3 || len(entries) != 3 || string(entries[0].Body) != "first" {
		t.Fatalf("the room holds %d entries up to %d (%v); want first, bob's and alic's", len(entries), head.Offset, err)
	}
}

// A room remembers at most KeysPerRoom keys in Redis, and its keys expire
// a window after its last keyed publish.
func TestKeysAreBoundedInRedis(t *testing.T) {
	srv := redistest.Start(t)
	e := newEngine(t, redisengine.Config{KeysPerRoom: 3, KeyWindow: time.Minute}, srv)
	for i := range 10 {
		k := broker.IdempotencyKey{Owner: "o", Key: fmt.Sprint("k", i)}
		if _, _, _, err := e.PublishKeyed(testCtx(t), "r", []byte(k.Key), "", k); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ cmd, key string }{{"HLEN", "rc:{r}:k"}, {"ZCARD", "rc:{r}:kt"}} {
		cmd, key := c.cmd, c.key
		if n, err := srv.Do(t, cmd, key).AsInt64(); err != nil || n != 3 {
			t.Errorf("%s %s = %d (%v), want 3", cmd, key, n, err)
		}
		if ms, err := srv.Do(t, "PTTL", key).AsInt64(); err != nil || ms <= 0 || ms > time.Minute.Milliseconds() {
			t.Errorf("PTTL %s = %d (%v), want within the window", key, ms, err)
		}
	}
	// In this order: a forgotten key, published again, is remembered anew
	// and makes the room forget its oldest.
	for _, c := range []struct {
		i    int
		want bool
	}{{9, true}, {7, true}, {6, false}, {0, false}} {
		i, want := c.i, c.want
		k := broker.IdempotencyKey{Owner: "o", Key: fmt.Sprint("k", i)}
		if _, _, dup, err := e.PublishKeyed(testCtx(t), "r", []byte("again"), "", k); err != nil || dup != want {
			t.Errorf("k%d again: duplicate %v (%v), want %v", i, dup, err, want)
		}
	}
}

// A room that lost its data (Redis restarted from a snapshot that still
// holds the key) has a new epoch, which starts with no key: the retry is a
// new message, in the new epoch.
func TestKeysDieWithTheEpoch(t *testing.T) {
	srv := redistest.Start(t, redistest.WithSnapshot())
	e := newEngine(t, redisengine.Config{}, srv)
	k := broker.IdempotencyKey{Owner: "o", Key: "k"}
	_, first, _, err := e.PublishKeyed(testCtx(t), "r", []byte("first"), "", k)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Do(t, "SAVE").Error(); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	srv.Restart(t)
	if n, err := srv.Do(t, "HLEN", "rc:{r}:k").AsInt64(); err != nil || n != 1 {
		t.Fatalf("the snapshot restored %d keys (%v), want 1: the test does not set up the hazard", n, err)
	}
	var off uint64
	var epoch string
	var dup bool
	waitFor(t, func() string { return fmt.Sprint(err) }, func() bool {
		off, epoch, dup, err = e.PublishKeyed(testCtx(t), "r", []byte("retry"), "", k)
		return err == nil
	})
	if off != 1 || epoch == first || dup {
		t.Fatalf("retry after the restart: %d/%s duplicate %v; want 1 in a new epoch (was %s), not a duplicate", off, epoch, dup, first)
	}
	if n, err := srv.Do(t, "HLEN", "rc:{r}:k").AsInt64(); err != nil || n != 1 {
		t.Errorf("the new epoch remembers %d keys (%v), want 1: the retry's", n, err)
	}
}

// What a room at its cap of keys costs Redis, at the longest keys: logged
// for docs/scaling.md, and held under twice the field plus 300 bytes a key.
func TestKeysMemoryAtTheCap(t *testing.T) {
	srv := redistest.Start(t)
	e := newEngine(t, redisengine.Config{}, srv)
	pad := strings.Repeat("x", broker.MaxIdempotencyKeyBytes-20)
	for i := range broker.DefaultIdempotencyKeys {
		k := broker.IdempotencyKey{Owner: "alice", Key: fmt.Sprintf("%020d", i) + pad}
		if _, _, _, err := e.PublishKeyed(testCtx(t), "r", []byte("x"), "", k); err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	for _, key := range []string{"rc:{r}:k", "rc:{r}:kt"} {
		n, err := srv.Do(t, "MEMORY", "USAGE", key, "SAMPLES", "0").AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	field := len("5:alice") + broker.MaxIdempotencyKeyBytes
	per := total / int64(broker.DefaultIdempotencyKeys)
	t.Logf("%d keys of %d-byte fields: %d bytes in Redis, %d a key", broker.DefaultIdempotencyKeys, field, total, per)
	if per > int64(2*field+300) {
		t.Errorf("%d bytes a key, over twice the %d-byte field plus 300", per, field)
	}
}
