package brokertest

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

var orderingCases = []testCase{
	{"concurrent publishers to one room", func(t *testing.T, newHub Factory) { testConcurrentPublishers(t, newHub, 1) }},
	{"concurrent publishers to several rooms", func(t *testing.T, newHub Factory) { testConcurrentPublishers(t, newHub, 3) }},
	{"exclude", testExclude},
	{"collect budget", testCollectBudget},
	{"park and wake", testParkAndWake},
}

// ack is an acknowledged publish.
type ack struct {
	room, text string
	offset     uint64
	epoch      string
}

// Several goroutines publish at once to the same rooms while subscribers
// read them: every subscriber gets every acknowledged message of its rooms
// exactly once, in offset order; a room's acknowledged offsets are 1..n
// without a hole; and every publish to a room reports the room's epoch.
func testConcurrentPublishers(t *testing.T, newHub Factory, nRooms int) {
	const publishers, each = 4, 100 // within the default backlog, so no reader lags
	h := newHub(t)
	rooms := make([]string, nRooms)
	for i := range rooms {
		rooms[i] = fmt.Sprint("r", i)
	}
	roomOf := func(p, i int) string { return rooms[(p+i)%nRooms] }
	perRoom := make(map[string]int)
	for p := range publishers {
		for i := range each {
			perRoom[roomOf(p, i)]++
		}
	}

	// Readers in every room, woken both ways, and one in each room alone.
	all := []*reader{newReader(t, h, "all"), newNotifiedReader(t, h, "all-notified")}
	epochs := make(map[string]string)
	for _, r := range all {
		for _, room := range rooms {
			res := r.join(room, broker.JoinOptions{})
			if e, ok := epochs[room]; ok && e != res.Epoch {
				t.Errorf("joins of %s report epochs %s and %s", room, e, res.Epoch)
			}
			epochs[room] = res.Epoch
		}
	}
	readers := slices.Clone(all)
	for i, room := range rooms {
		newR := newReader
		if i%2 == 1 {
			newR = newNotifiedReader
		}
		r := newR(t, h, "only-"+room)
		r.join(room, broker.JoinOptions{})
		readers = append(readers, r)
	}

	var wg sync.WaitGroup
	received := make([][]*roomcastv1.Message, len(readers))
	for i, r := range readers {
		n := 0
		for room := range r.rooms {
			n += perRoom[room]
		}
		wg.Go(func() {
			var err error
			if received[i], err = r.read(n); err != nil {
				t.Error(err)
			}
		})
	}
	acks := make([][]ack, publishers)
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				room, text := roomOf(p, i), fmt.Sprintf("p%d-%d", p, i)
				off, epoch, err := h.Publish(t.Context(), textMessage(room, text), "")
				if err != nil {
					t.Errorf("publishing %s to %s: %v", text, room, err)
					return
				}
				acks[p] = append(acks[p], ack{room, text, off, epoch})
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// What was acknowledged, per room in offset order: the model.
	want := make(map[string][]string)
	byRoom := make(map[string][]ack)
	for _, a := range slices.Concat(acks...) {
		byRoom[a.room] = append(byRoom[a.room], a)
	}
	for room, as := range byRoom {
		slices.SortFunc(as, func(a, b ack) int { return cmp.Compare(a.offset, b.offset) })
		for i, a := range as {
			if a.offset != uint64(i+1) {
				t.Fatalf("%s: acknowledged offsets are not 1..%d: %d at position %d", room, len(as), a.offset, i+1)
			}
			if a.epoch != epochs[room] {
				t.Errorf("%s: publish of offset %d reports epoch %q, the joins %q", room, a.offset, a.epoch, epochs[room])
			}
			want[room] = append(want[room], fmt.Sprintf("%s/%d:%s", room, a.offset, a.text))
		}
	}
	for i, r := range readers {
		got := make(map[string][]string)
		for _, m := range received[i] {
			got[m.GetRoom()] = append(got[m.GetRoom()], msgText(m))
		}
		for room := range r.rooms {
			if !slices.Equal(got[room], want[room]) {
				t.Errorf("%s got in %s:\n%v\nwant the acknowledged messages in offset order:\n%v", r.s.ID(), room, got[room], want[room])
			}
			delete(got, room)
		}
		if len(got) > 0 {
			t.Errorf("%s got messages of rooms it is not in: %v", r.s.ID(), got)
		}
	}
	settle(t, h, rooms, readers...)
}

// A message published with a subscriber's id as exclude reaches every other
// subscriber of the room, and not that one.
func testExclude(t *testing.T, newHub Factory) {
	h := newHub(t)
	a, b := newReader(t, h, "A"), newReader(t, h, "B")
	a.join("r", broker.JoinOptions{})
	b.join("r", broker.JoinOptions{})
	publish(t, h, "r", "not for A", "A")
	publish(t, h, "r", "for all", "")
	publish(t, h, "r", "not for B", "B")
	a.expect("r/2:for all", "r/3:not for B")
	b.expect("r/1:not for A", "r/2:for all")
	settle(t, h, []string{"r"}, a, b)
}

// Collect stops at its byte budget, but always takes at least one message,
// so a budget smaller than every message gives them one at a time.
func testCollectBudget(t *testing.T, newHub Factory) {
	h := newHub(t)
	r := newReader(t, h, "S")
	r.maxBytes = 1
	r.join("r", broker.JoinOptions{})
	var want []string
	for i := 1; i <= 10; i++ {
		publish(t, h, "r", fmt.Sprint(i), "")
		want = append(want, fmt.Sprintf("r/%d:%d", i, i))
	}
	r.expect(want...)
	for i, n := range r.batches {
		if n != 1 {
			t.Errorf("frame %d of a 1-byte budget has %d messages", i, n)
		}
	}
}

// A subscriber that has taken everything parks, and a publish to any of its
// rooms wakes it: through Wake, or through its notify func.
func testParkAndWake(t *testing.T, newHub Factory) {
	h := newHub(t)
	readers := []*reader{newReader(t, h, "W"), newNotifiedReader(t, h, "N")}
	for _, r := range readers {
		r.join("a", broker.JoinOptions{})
		r.join("b", broker.JoinOptions{})
	}
	for _, room := range []string{"a", "b"} {
		off, _ := publish(t, h, room, "first", "")
		for _, r := range readers {
			r.expect(fmt.Sprintf("%s/%d:first", room, off))
			select {
			case <-r.wake: // a stale wake-up would prove nothing below
			default:
			}
			if !r.s.Park() {
				t.Fatalf("%s has taken every message, but Park says there is more", r.s.ID())
			}
		}
		off, _ = publish(t, h, room, "second", "")
		for _, r := range readers {
			select {
			case <-r.wake:
			case <-time.After(timeout):
				t.Fatalf("%s, parked, was not woken by a publish to %s", r.s.ID(), room)
			}
			r.expect(fmt.Sprintf("%s/%d:second", room, off))
		}
	}
}
