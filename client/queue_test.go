package client

import (
	"testing"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// The queue is first in, first out, whatever the pattern of pushes and
// pops, and keeps its byte count.
func TestQueueOrder(t *testing.T) {
	s := new(Subscription)
	var pushed, popped uint64
	push := func(k int) {
		for range k {
			pushed++
			s.push(&Event{Message: &Message{Offset: pushed, Payload: &roomcastv1.Message_Data{Data: make([]byte, 3)}}})
		}
	}
	pop := func(k int) {
		for range k {
			popped++
			if ev := s.pop(); ev.Message.GetOffset() != popped {
				t.Fatalf("popped offset %d, want %d", ev.Message.GetOffset(), popped)
			}
		}
	}
	for _, step := range [][2]int{{1, 1}, {5, 2}, {7, 10}, {300, 299}, {1, 0}, {40, 42}, {3, 3}} {
		push(step[0])
		pop(step[1])
		if n := int(pushed - popped); s.queued() != n || s.qbytes != 3*n {
			t.Fatalf("after %v: %d queued, %d bytes; want %d and %d", step, s.queued(), s.qbytes, n, 3*n)
		}
	}
}

// One event in, one out, as when Next reads the stream itself, costs the
// queue no allocation: its array is reused once it empties.
func TestQueueReusesItsArray(t *testing.T) {
	s := new(Subscription)
	ev := &Event{Message: &Message{}}
	s.push(ev)
	s.pop()
	if allocs := testing.AllocsPerRun(1000, func() {
		s.push(ev)
		s.pop()
	}); allocs != 0 {
		t.Fatalf("%v allocations per event", allocs)
	}
}
