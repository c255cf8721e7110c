package redisengine_test

import (
	"fmt"
	"testing"

	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/internal/redistest"
)

// Rooms spread over two Redis servers, each room wholly on one; restarting
// one server gives new epochs to its rooms only, and the other's rooms go
// on without a break.
func TestTwoShards(t *testing.T) {
	servers := []*redistest.Server{redistest.Start(t), redistest.Start(t)}
	s := newSink()
	e := newEngine(t, redisengine.Config{Sink: s}, servers...)
	const rooms = 16
	on := make(map[string]int)
	epochs := make(map[string]string)
	for i := range rooms {
		room := fmt.Sprint("room", i)
		head, _, err := e.Track(testCtx(t), room, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		epochs[room] = head.Epoch
		if _, _, err := e.Publish(testCtx(t), room, body(room, 0), ""); err != nil {
			t.Fatal(err)
		}
		on[room] = -1
		for j, srv := range servers {
			n, err := srv.Do(t, "EXISTS", "rc:{"+room+"}:m", "rc:{"+room+"}:h").AsInt64()
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case n == 2 && on[room] == -1:
				on[room] = j
			case n != 0:
				t.Fatalf("%s: %d of its keys on server %d, and on %d", room, n, j, on[room])
			}
		}
		if on[room] == -1 {
			t.Fatalf("%s is on neither server", room)
		}
	}
	per := [2]int{}
	for _, j := range on {
		per[j]++
	}
	if per[0] == 0 || per[1] == 0 {
		t.Fatalf("rooms per server: %v", per)
	}

	servers[0].Kill()
	servers[0].Restart(t)
	for room, j := range on {
		var off uint64
		var epoch string
		var err error
		waitFor(t, func() string { return fmt.Sprint(err) }, func() bool {
			off, epoch, err = e.Publish(testCtx(t), room, body(room, 1), "")
			return err == nil
		})
		switch {
		case j == 0 && (off != 1 || epoch == epochs[room]):
			t.Errorf("%s, on the restarted server: %d/%s, want 1 in a new epoch", room, off, epoch)
		case j == 1 && (off != 2 || epoch != epochs[room]):
			t.Errorf("%s, on the other server: %d/%s, want 2/%s", room, off, epoch, epochs[room])
		}
		if j == 1 {
			waitFor(t, func() string { return fmt.Sprint(room, ": ", s.contiguous(room, 0, epochs[room], 2)) },
				func() bool { return s.contiguous(room, 0, epochs[room], 2) == nil })
		}
	}
}
