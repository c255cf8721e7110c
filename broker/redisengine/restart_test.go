package redisengine_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/internal/redistest"
)

// Redis kills the node's PUB/SUB connection while a publisher runs flat
// out, again and again: the Sink still gets every entry exactly once, in
// order, with no break, the missed frames read from the stream.
func TestPubSubDisconnectsAreHealedFromTheStream(t *testing.T) {
	srv := redistest.Start(t)
	s := newSink()
	node := newEngine(t, redisengine.Config{Sink: s}, srv)
	pub := newEngine(t, redisengine.Config{}, srv)
	head, _, err := node.Track(testCtx(t), "r", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var last atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				off, _, err := pub.Publish(testCtx(t), "r", body("r", i), "")
				if err != nil {
					t.Error(err)
					return
				}
				for prev := last.Load(); off > prev && !last.CompareAndSwap(prev, off); prev = last.Load() {
				}
			}
		})
	}
	for round := 0; round < 20 && (round < 3 || node.Stats().Healed == 0); round++ {
		sessions := node.Stats().Sessions
		from := last.Load()
		waitFor(t, func() string { return "publishes" }, func() bool { return last.Load() >= from+20 })
		if n := srv.KillPubSubClients(t); n < 1 {
			t.Fatalf("round %d: killed %d PUB/SUB connections", round, n)
		}
		waitFor(t, func() string { return "a new session" }, func() bool { return node.Stats().Sessions > sessions })
	}
	close(stop)
	wg.Wait()
	total := last.Load()
	waitFor(t, func() string { return s.contiguous("r", head.Offset, head.Epoch, total).Error() },
		func() bool { return s.contiguous("r", head.Offset, head.Epoch, total) == nil })
	st := node.Stats()
	if st.Healed == 0 || st.Sessions < 4 || st.Resets != 0 {
		t.Fatalf("stats %+v: want entries healed, a session per kill and no resets", st)
	}
	if n := uint64(s.count("r")); n != total {
		t.Fatalf("%d entries delivered for %d publishes", n, total)
	}
	t.Logf("%d publishes, stats %+v", total, st)
}

// Redis restarts empty: the next publish starts a new epoch at offset 1,
// and a node tracking the room shows its Sink the break (a Reset or the new
// epoch), then goes on in the new epoch.
func TestRestartWithoutPersistenceStartsANewEpoch(t *testing.T) {
	srv := redistest.Start(t)
	s := newSink()
	node := newEngine(t, redisengine.Config{Sink: s}, srv)
	head, _, err := node.Track(testCtx(t), "r", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, _, err := node.Publish(testCtx(t), "r", body("r", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() string { return "5 entries" }, func() bool { return s.contiguous("r", 0, head.Epoch, 5) == nil })

	srv.Kill()
	srv.Restart(t)
	var off uint64
	var epoch string
	waitFor(t, func() string { return fmt.Sprintf("publish after the restart: %v", err) }, func() bool {
		off, epoch, err = node.Publish(testCtx(t), "r", []byte("after"), "")
		return err == nil
	})
	if off != 1 || epoch == head.Epoch {
		t.Fatalf("first publish after the restart: %d/%s; want 1 in a new epoch (was %s)", off, epoch, head.Epoch)
	}
	waitFor(t, func() string { return offsets(s.events("r")) }, func() bool {
		evs := s.events("r")
		last := evs[len(evs)-1]
		return !last.reset && last.Offset == 1 && last.Epoch == epoch
	})
	for _, ev := range s.events("r")[5:] {
		if ev.Epoch != epoch || (ev.reset && ev.Offset != 0) || (!ev.reset && ev.Offset != 1) {
			t.Fatalf("after the restart the Sink got %+v (reset %v); want a Reset to 0 or entry 1, of %s", ev.Entry, ev.reset, epoch)
		}
	}
	if st := node.Stats(); st.Resets == 0 || st.Bootstraps < 2 {
		t.Fatalf("stats %+v: want a reset and a second bootstrap", st)
	}
}

// The hazard process-bound scripts exist for: Redis restarts from a
// snapshot older than its last writes. Offsets 6..8 were acknowledged after
// the snapshot; the restarted Redis holds the room at 5 in the same epoch.
// The next publish must not be 6 of that epoch: it starts a new one, and
// no (offset, epoch) is ever given twice.
func TestRestartFromAnOlderSnapshotNeverReusesAPosition(t *testing.T) {
	srv := redistest.Start(t, redistest.WithSnapshot())
	e := newEngine(t, redisengine.Config{}, srv)
	seen := make(map[string]string)
	publish := func(text string) (uint64, string) {
		t.Helper()
		var off uint64
		var epoch string
		var err error
		waitFor(t, func() string { return fmt.Sprint(err) }, func() bool {
			off, epoch, err = e.Publish(testCtx(t), "r", []byte(text), "")
			return err == nil
		})
		pos := fmt.Sprintf("%d/%s", off, epoch)
		if prev, ok := seen[pos]; ok {
			t.Fatalf("%s given to %q and to %q", pos, prev, text)
		}
		seen[pos] = text
		return off, epoch
	}
	var first string
	for i := 1; i <= 5; i++ {
		_, first = publish(fmt.Sprint("before the snapshot ", i))
	}
	if err := srv.Do(t, "SAVE").Error(); err != nil {
		t.Fatal(err)
	}
	for i := 6; i <= 8; i++ {
		publish(fmt.Sprint("after the snapshot ", i))
	}
	srv.Kill()
	srv.Restart(t)
	if s, err := srv.Do(t, "HGET", "rc:{r}:m", "s").ToString(); err != nil || s != "5" {
		t.Fatalf("the snapshot restored offset %q (%v), want 5: the test does not set up the hazard", s, err)
	}
	off, epoch := publish("after the restart")
	if off != 1 || epoch == first {
		t.Fatalf("after the restart: %d/%s, want 1 in a new epoch (was %s)", off, epoch, first)
	}
	head, entries, err := e.Read(testCtx(t), "r", 0, 100, false)
	if err != nil {
		t.Fatal(err)
	}
	if head.Offset != 1 || head.Epoch != epoch || len(entries) != 1 || string(entries[0].Body) != "after the restart" {
		t.Fatalf("history after the restart: %+v, %d entries", head, len(entries))
	}
}

// SCRIPT FLUSH (an operator's, say) costs a bootstrap, not an epoch: the
// Redis process is the same.
func TestScriptFlushKeepsTheEpoch(t *testing.T) {
	srv := redistest.Start(t)
	e := newEngine(t, redisengine.Config{}, srv)
	_, epoch, err := e.Publish(testCtx(t), "r", []byte("1"), "")
	if err != nil {
		t.Fatal(err)
	}
	boots := e.Stats().Bootstraps
	if err := srv.Do(t, "SCRIPT", "FLUSH").Error(); err != nil {
		t.Fatal(err)
	}
	off, epoch2, err := e.Publish(testCtx(t), "r", []byte("2"), "")
	if err != nil || off != 2 || epoch2 != epoch {
		t.Fatalf("after SCRIPT FLUSH: %d/%s, %v; want 2/%s", off, epoch2, err, epoch)
	}
	if got := e.Stats().Bootstraps; got != boots+1 {
		t.Fatalf("%d bootstraps, want %d", got, boots+1)
	}
	// Reads run the head script inside MULTI: NOSCRIPT there too.
	if err := srv.Do(t, "SCRIPT", "FLUSH").Error(); err != nil {
		t.Fatal(err)
	}
	head, entries, err := e.Read(testCtx(t), "r", 0, 10, false)
	if err != nil || head.Offset != 2 || head.Epoch != epoch || len(entries) != 2 {
		t.Fatalf("Read after SCRIPT FLUSH: %+v, %d entries, %v", head, len(entries), err)
	}
	if got := e.Stats().Bootstraps; got != boots+2 {
		t.Fatalf("%d bootstraps, want %d", got, boots+2)
	}
}

// A room's hash stamped by another Redis process is not trusted, whatever
// its offsets say: the room starts again in a new epoch.
func TestAHashOfAnotherProcessGetsANewEpoch(t *testing.T) {
	srv := redistest.Start(t)
	e := newEngine(t, redisengine.Config{}, srv)
	for range 3 {
		if _, _, err := e.Publish(testCtx(t), "r", []byte("x"), ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Do(t, "HSET", "rc:{r}:m", "e", "FORGED", "r", "0000000000000000000000000000000000000000").Error(); err != nil {
		t.Fatal(err)
	}
	if head, _, err := e.Read(testCtx(t), "r", 0, 10, false); err != nil || head.Epoch != "" || head.Offset != 0 {
		t.Fatalf("Read of a foreign hash: %+v, %v; want nothing retained", head, err)
	}
	off, epoch, err := e.Publish(testCtx(t), "r", []byte("y"), "")
	if err != nil || off != 1 || epoch == "FORGED" {
		t.Fatalf("publish: %d/%s, %v; want 1 in a new epoch", off, epoch, err)
	}
}

// A hung Redis is noticed on the PUB/SUB connection too (an unanswered
// PING): the session is replaced once Redis answers again, and delivery
// goes on where it was.
func TestAHungRedisIsNoticedAndDeliveryGoesOn(t *testing.T) {
	srv := redistest.Start(t)
	s := newSink()
	node := newEngine(t, redisengine.Config{Sink: s, Timeout: 300 * time.Millisecond}, srv)
	head, _, err := node.Track(testCtx(t), "r", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := node.Publish(testCtx(t), "r", []byte("1"), ""); err != nil {
		t.Fatal(err)
	}
	sessions := node.Stats().Sessions
	srv.Pause(t)
	waitFor(t, func() string { return "a new PUB/SUB session" }, func() bool { return node.Stats().Sessions > sessions })
	srv.Resume(t)
	waitFor(t, func() string { return fmt.Sprint(err) }, func() bool {
		_, _, err = node.Publish(testCtx(t), "r", []byte("2"), "")
		return err == nil
	})
	waitFor(t, func() string { return s.contiguous("r", 0, head.Epoch, 2).Error() },
		func() bool { return s.contiguous("r", 0, head.Epoch, 2) == nil })
}
