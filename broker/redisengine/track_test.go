package redisengine_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/internal/redistest"
)

// Two nodes on one Redis, publishing into the same rooms at once: each
// node's Sink gets every entry of every room exactly once, in offset
// order, with the same bodies.
func TestTwoNodesReceiveEveryEntryOnceInOrder(t *testing.T) {
	srv := redistest.Start(t)
	sinks := []*sink{newSink(), newSink()}
	nodes := []*redisengine.Engine{
		newEngine(t, redisengine.Config{Sink: sinks[0]}, srv),
		newEngine(t, redisengine.Config{Sink: sinks[1]}, srv),
	}
	rooms := []string{"a", "b", "c"}
	epochs := make(map[string]string)
	for _, room := range rooms {
		for _, n := range nodes {
			head, backfill, err := n.Track(testCtx(t), room, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			if head.Offset != 0 || head.Epoch == "" || backfill != nil {
				t.Fatalf("Track of a new room: %+v, %d entries", head, len(backfill))
			}
			if prev := epochs[room]; prev != "" && prev != head.Epoch {
				t.Fatalf("the nodes see epochs %s and %s", prev, head.Epoch)
			}
			epochs[room] = head.Epoch
		}
	}
	const each = 60
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			for j := range each {
				for _, room := range rooms {
					_, epoch, err := n.Publish(testCtx(t), room, body(room, i*each+j), "")
					if err != nil || epoch != epochs[room] {
						t.Errorf("publish: %v, epoch %s, want %s", err, epoch, epochs[room])
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for _, room := range rooms {
		for i, s := range sinks {
			var err error
			waitFor(t, func() string { return fmt.Sprintf("node %d, room %s: %v", i, room, err) }, func() bool {
				err = s.contiguous(room, 0, epochs[room], 2*each)
				return err == nil && s.count(room) == 2*each
			})
		}
		a, b := sinks[0].events(room), sinks[1].events(room)
		for i := range a {
			if string(a[i].Body) != string(b[i].Body) {
				t.Fatalf("room %s offset %d: %q on one node, %q on the other", room, i+1, a[i].Body, b[i].Body)
			}
		}
	}
}

// A node joins a room while a publisher runs flat out: the backfill Track
// returns ends at the head it returns, and the Sink gets every entry after
// it, once each, in order: no gap and no duplicate between the two.
func TestTrackBackfillMeetsLiveEntriesWhilePublishing(t *testing.T) {
	srv := redistest.Start(t)
	pub := newEngine(t, redisengine.Config{}, srv)
	var acked atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
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
			acked.Store(off)
		}
	})
	defer wg.Wait()
	defer close(stop)
	waitFor(t, func() string { return "the first publishes" }, func() bool { return acked.Load() >= 20 })
	for i := range 12 {
		s := newSink()
		node := newEngine(t, redisengine.Config{Sink: s}, srv)
		after := acked.Load() - uint64(i%5) - 1 // sometimes behind the head, sometimes at it
		head, backfill, err := node.Track(testCtx(t), "r", &broker.Position{Offset: after}, 100)
		if err != nil {
			t.Fatal(err)
		}
		if head.Offset < after {
			t.Fatalf("Track from %d: head %d", after, head.Offset)
		}
		for j, en := range backfill {
			if want := after + 1 + uint64(j); en.Offset != want || en.Epoch != head.Epoch {
				t.Fatalf("backfill[%d] = %d/%s, want %d/%s", j, en.Offset, en.Epoch, want, head.Epoch)
			}
		}
		if uint64(len(backfill)) != head.Offset-after {
			t.Fatalf("backfill of %d entries after %d, head %d", len(backfill), after, head.Offset)
		}
		target := head.Offset + 20
		waitFor(t, func() string {
			return fmt.Sprintf("iteration %d: %v", i, s.contiguous("r", head.Offset, head.Epoch, target))
		},
			func() bool { return s.contiguous("r", head.Offset, head.Epoch, target) == nil })
		node.Close()
	}
}

// Untracked, a room is unsubscribed (at once with a negative Linger) and
// its entries no longer reach the Sink; tracked again within the linger, it
// stays subscribed throughout.
func TestUntrackUnsubscribesAfterTheLinger(t *testing.T) {
	srv := redistest.Start(t)
	numsub := func(room string) int64 {
		v, err := srv.Do(t, "PUBSUB", "NUMSUB", "rc:{"+room+"}").ToArray()
		if err != nil {
			t.Fatal(err)
		}
		n, _ := v[1].AsInt64()
		return n
	}
	t.Run("at once", func(t *testing.T) {
		s := newSink()
		e := newEngine(t, redisengine.Config{Sink: s, Linger: -1}, srv)
		for _, room := range []string{"gone", "kept"} {
			if _, _, err := e.Track(testCtx(t), room, nil, 0); err != nil {
				t.Fatal(err)
			}
		}
		e.Untrack("gone")
		waitFor(t, func() string { return "UNSUBSCRIBE" }, func() bool { return numsub("gone") == 0 })
		for _, room := range []string{"gone", "kept"} {
			if _, _, err := e.Publish(testCtx(t), room, []byte("x"), ""); err != nil {
				t.Fatal(err)
			}
		}
		// Frames come in publish order on the one connection: once kept's
		// is here, gone's would be too.
		waitFor(t, func() string { return "kept's entry" }, func() bool { return s.count("kept") == 1 })
		if n := s.count("gone"); n != 0 {
			t.Fatalf("%d entries of an untracked room delivered", n)
		}
	})
	t.Run("linger", func(t *testing.T) {
		s := newSink()
		e := newEngine(t, redisengine.Config{Sink: s, Linger: time.Second}, srv)
		if _, _, err := e.Track(testCtx(t), "l", nil, 0); err != nil {
			t.Fatal(err)
		}
		e.Untrack("l")
		e.Untrack("l") // twice is once
		head, _, err := e.Track(testCtx(t), "l", nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.Publish(testCtx(t), "l", []byte("x"), ""); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() string { return "the entry" }, func() bool { return s.contiguous("l", head.Offset, head.Epoch, 1) == nil })
		e.Untrack("l")
		if numsub("l") != 1 {
			t.Fatal("unsubscribed before the linger passed")
		}
		waitFor(t, func() string { return "UNSUBSCRIBE after the linger" }, func() bool { return numsub("l") == 0 })
	})
}

// Many rooms tracked at once (their SUBSCRIBEs go out in batches), some of
// them twice: each is subscribed before its Track returns, and gets its
// entries.
func TestManyTracksAtOnce(t *testing.T) {
	srv := redistest.Start(t)
	s := newSink()
	e := newEngine(t, redisengine.Config{Sink: s}, srv)
	const rooms = 1200 // more than one batch of 512
	heads := make([]broker.Position, rooms)
	var wg sync.WaitGroup
	for i := range rooms + rooms/4 {
		wg.Go(func() {
			head, _, err := e.Track(testCtx(t), fmt.Sprint("room", i%rooms), nil, 0)
			if err != nil {
				t.Error(err)
			}
			if i < rooms {
				heads[i] = head
			}
		})
	}
	wg.Wait()
	stats, err := srv.Do(t, "INFO", "commandstats").ToString()
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(stats, "cmdstat_subscribe:calls=")
	calls, _, _ := strings.Cut(rest, ",")
	if n, err := strconv.Atoi(calls); err != nil || n >= rooms {
		t.Errorf("%s SUBSCRIBE commands for %d rooms: want them batched", calls, rooms)
	} else {
		t.Logf("%d SUBSCRIBE commands for %d rooms", n, rooms)
	}
	channels, err := srv.Do(t, "PUBSUB", "CHANNELS", "rc:*").AsStrSlice()
	if err != nil || len(channels) != rooms {
		t.Fatalf("%d channels subscribed (%v), want %d", len(channels), err, rooms)
	}
	for i := range rooms {
		if _, _, err := e.Publish(testCtx(t), fmt.Sprint("room", i), []byte("x"), ""); err != nil {
			t.Fatal(err)
		}
	}
	for i := range rooms {
		room := fmt.Sprint("room", i)
		waitFor(t, func() string { return room }, func() bool { return s.contiguous(room, 0, heads[i].Epoch, 1) == nil })
	}
}
