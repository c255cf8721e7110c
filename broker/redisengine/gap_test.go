package redisengine_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/internal/redistest"
)

// When the node misses frames the stream no longer holds (it keeps 3
// entries here), the Sink is shown the gap: offsets only ever rise, and
// every jump is one the engine counted as a reset. Nothing is duplicated
// and nothing is skipped in silence.
func TestAGapTheStreamCannotHealIsShown(t *testing.T) {
	srv := redistest.Start(t)
	s := newSink()
	cfg := redisengine.Config{HistoryMessages: 3}
	node := newEngine(t, redisengine.Config{Sink: s, HistoryMessages: cfg.HistoryMessages}, srv)
	pub := newEngine(t, cfg, srv)
	head, _, err := node.Track(testCtx(t), "r", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var last atomic.Uint64
	for round := 0; round < 50 && node.Stats().Resets == 0; round++ {
		sessions := node.Stats().Sessions
		srv.KillPubSubClients(t)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for i := range 10 {
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
		wg.Wait()
		waitFor(t, func() string { return "a new session" }, func() bool { return node.Stats().Sessions > sessions })
	}
	total := last.Load()
	waitFor(t, func() string { return offsets(s.events("r")) }, func() bool {
		evs := s.events("r")
		return len(evs) > 0 && evs[len(evs)-1].Offset == total
	})
	resets := node.Stats().Resets
	if resets == 0 {
		t.Fatalf("no frame was lost past the stream's 3 entries in 50 rounds (%+v): the test did not set up a gap", node.Stats())
	}
	jumps, prev := uint64(0), head.Offset
	for _, ev := range s.events("r") {
		switch {
		case ev.reset || ev.Epoch != head.Epoch:
			t.Fatalf("event %+v (reset %v): want entries of %s", ev.Entry, ev.reset, head.Epoch)
		case ev.Offset <= prev:
			t.Fatalf("offset %d after %d: %s", ev.Offset, prev, offsets(s.events("r")))
		case ev.Offset > prev+1:
			jumps++
		}
		prev = ev.Offset
	}
	if jumps != resets {
		t.Fatalf("%d jumps in offsets, %d resets counted", jumps, resets)
	}
	t.Logf("%d publishes, %d gaps shown, stats %+v", total, jumps, node.Stats())
}

// A frame no publish made (an offset past the room's head, or no frame at
// all) is dropped and counted, and does not hold up the room's real
// entries behind it.
func TestForgedFramesAreDropped(t *testing.T) {
	srv := redistest.Start(t)
	s := newSink()
	node := newEngine(t, redisengine.Config{Sink: s}, srv)
	head, _, err := node.Track(testCtx(t), "r", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"garbage", fmt.Sprintf("m:10:%s:0:0:forged", head.Epoch)} {
		if err := srv.Do(t, "PUBLISH", "rc:{r}", f).Error(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() string { return fmt.Sprintf("%+v", node.Stats()) }, func() bool { return node.Stats().BadFrames == 2 })
	if _, _, err := node.Publish(testCtx(t), "r", []byte("real"), ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() string { return offsets(s.events("r")) }, func() bool { return s.contiguous("r", 0, head.Epoch, 1) == nil })
}
