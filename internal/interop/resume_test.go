package interop_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// resumeRoom is the room of the resume tests.
const resumeRoom = "interop.resume"

// resumer publishes to resumeRoom and checks what an example subscriber of
// it prints across its reconnects.
type resumer struct {
	t        *testing.T
	ctx      context.Context
	sub      *proc
	payloads map[uint64]string // offset → text published
}

func newResumer(t *testing.T, ctx context.Context, sub *proc) *resumer {
	return &resumer{t: t, ctx: ctx, sub: sub, payloads: make(map[uint64]string)}
}

// publish publishes k messages of random text through c and returns the
// offsets of the first and the last.
func (r *resumer) publish(c roomcastv1.BrokerServiceClient, k int) (first, last uint64) {
	r.t.Helper()
	for range k {
		text := fmt.Sprintf("message %d", rand.Uint64())
		resp, err := c.Publish(r.ctx, &roomcastv1.PublishRequest{Room: resumeRoom, Payload: &roomcastv1.PublishRequest_Text{Text: text}})
		if err != nil {
			r.t.Fatal(err)
		}
		if first == 0 {
			first = resp.GetOffset()
		}
		last = resp.GetOffset()
		r.payloads[last] = text
	}
	return first, last
}

// expectMessages checks that the subscriber prints exactly the messages
// from first to last, in order, with what was published.
func (r *resumer) expectMessages(first, last uint64) {
	r.t.Helper()
	for i, ev := range r.sub.messages(r.ctx, int(last-first+1)) {
		m := ev.msg(r.t)
		if want := first + uint64(i); m.GetOffset() != want || m.GetText() != r.payloads[want] {
			r.t.Fatalf("%s got offset %d %q, want offset %d %q", r.sub.name, m.GetOffset(), m.GetText(), want, r.payloads[want])
		}
	}
}

// expectDisconnected checks that the subscriber reports its stream lost.
func (r *resumer) expectDisconnected() {
	r.t.Helper()
	if ev := r.sub.expect(r.ctx, "disconnected"); ev.Code == "OK" {
		r.t.Errorf("%s: %s", r.sub.name, ev.line)
	}
}

// expectRejoin skips the disconnects the subscriber reports and returns its
// join, which must give a position.
func (r *resumer) expectRejoin() event {
	r.t.Helper()
	for {
		ev := r.sub.next(r.ctx)
		switch ev.Event {
		case "disconnected":
			continue
		case "joined":
			if !ev.Resumed || ev.Room != resumeRoom {
				r.t.Fatalf("%s rejoined with %s, want a join with a position", r.sub.name, ev.line)
			}
			return ev
		default:
			r.t.Fatalf("%s printed %s, want its rejoin", r.sub.name, ev.line)
		}
	}
}

// expectRecovered checks that the subscriber rejoins recovered, the room
// then at offset head.
func (r *resumer) expectRecovered(head uint64) event {
	r.t.Helper()
	join := r.expectRejoin()
	if !join.Recovered || join.Offset != strconv.FormatUint(head, 10) {
		r.t.Fatalf("%s rejoined with %s, want recovered at offset %d", r.sub.name, join.line, head)
	}
	return join
}
