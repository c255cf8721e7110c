package redisengine_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/internal/redistest"
)

// Concurrent publishers into several rooms: each room's offsets are 1..n,
// each given once, in one epoch, and the stream holds each body at its
// offset.
func TestPublishOffsetsAreContiguousUnderConcurrentPublishers(t *testing.T) {
	srv := redistest.Start(t)
	e := newEngine(t, redisengine.Config{}, srv)
	const publishers, rooms, each = 6, 3, 40
	type ack struct {
		room   string
		offset uint64
		epoch  string
		body   string
	}
	acks := make(chan ack, publishers*rooms*each)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				for r := range rooms {
					room := fmt.Sprintf("room%d", r)
					b := body(room, p*each+i)
					off, epoch, err := e.Publish(testCtx(t), room, b, "")
					if err != nil {
						t.Error(err)
						return
					}
					acks <- ack{room, off, epoch, string(b)}
				}
			}
		})
	}
	wg.Wait()
	close(acks)
	got := make(map[string]map[uint64]ack)
	for a := range acks {
		if got[a.room] == nil {
			got[a.room] = make(map[uint64]ack)
		}
		if prev, dup := got[a.room][a.offset]; dup {
			t.Fatalf("%s: offset %d given to %q and %q", a.room, a.offset, prev.body, a.body)
		}
		got[a.room][a.offset] = a
	}
	for r := range rooms {
		room := fmt.Sprintf("room%d", r)
		n := uint64(publishers * each)
		head, entries, err := e.Read(testCtx(t), room, 0, int(n), false)
		if err != nil {
			t.Fatal(err)
		}
		if head.Offset != n || len(entries) != int(n) {
			t.Fatalf("%s: head %d with %d entries, want %d", room, head.Offset, len(entries), n)
		}
		for i, en := range entries {
			a, ok := got[room][uint64(i+1)]
			switch {
			case !ok:
				t.Fatalf("%s: no publish got offset %d", room, i+1)
			case a.epoch != head.Epoch || en.Epoch != head.Epoch:
				t.Fatalf("%s: epochs %q, %q, head's %q", room, a.epoch, en.Epoch, head.Epoch)
			case en.Offset != uint64(i+1) || string(en.Body) != a.body:
				t.Fatalf("%s: stream has %q at %d, the publish of %q got %d", room, en.Body, en.Offset, a.body, i+1)
			}
		}
	}
}

// The excluded session and the publish time travel with the entry.
func TestPublishKeepsExcludeAndTime(t *testing.T) {
	srv := redistest.Start(t)
	e := newEngine(t, redisengine.Config{}, srv)
	before := time.Now().UnixNano()
	for _, ex := range []string{"", "sess-1", "odd:session{with}:colons"} {
		if _, _, err := e.Publish(testCtx(t), "r", []byte("x:y:z"), ex); err != nil {
			t.Fatal(err)
		}
	}
	_, entries, err := e.Read(testCtx(t), "r", 0, 10, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("%d entries", len(entries))
	}
	for i, want := range []string{"", "sess-1", "odd:session{with}:colons"} {
		en := entries[i]
		if en.Exclude != want || string(en.Body) != "x:y:z" || en.Time < before || en.Time > time.Now().UnixNano() {
			t.Errorf("entry %d: %+v, want exclude %q", i, en, want)
		}
	}
}

// With Redis down, or hung, Publish fails within the timeout with an error
// wrapping broker.ErrUnavailable; once it is back, publishing goes on.
func TestPublishFailsWithinTimeoutWhenRedisIsDown(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name       string
		down, back func(t *testing.T, s *redistest.Server)
	}{
		{"killed", func(t *testing.T, s *redistest.Server) { s.Kill() }, func(t *testing.T, s *redistest.Server) { s.Restart(t) }},
		{"hung", func(t *testing.T, s *redistest.Server) { s.Pause(t) }, func(t *testing.T, s *redistest.Server) { s.Resume(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			e := newEngine(t, redisengine.Config{Timeout: timeout}, srv)
			if _, _, err := e.Publish(testCtx(t), "r", []byte("1"), ""); err != nil {
				t.Fatal(err)
			}
			tc.down(t, srv)
			for range 3 {
				start := time.Now()
				_, _, err := e.Publish(testCtx(t), "r", []byte("lost"), "")
				if took := time.Since(start); !errors.Is(err, broker.ErrUnavailable) || took > timeout+time.Second {
					t.Fatalf("Publish with Redis down: %v after %v; want ErrUnavailable within %v", err, took, timeout)
				}
			}
			tc.back(t, srv)
			var err error
			waitFor(t, func() string { return fmt.Sprintf("publish after Redis came back: %v", err) }, func() bool {
				_, _, err = e.Publish(testCtx(t), "r", []byte("again"), "")
				return err == nil
			})
		})
	}
}
