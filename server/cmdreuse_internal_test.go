package server

import (
	"context"
	"testing"
	"time"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A reader refused by the rate limits pauses after each refusal: under a
// flood (attack (e) of issue #13) that is most commands, and each pause
// made a timer.
func TestReaderPausesWithoutAllocating(t *testing.T) {
	ss := &session{srv: &Server{}, stream: contextOnly{ctx: context.Background()}}
	allocs := testing.AllocsPerRun(50, func() {
		if !ss.pauseReading(time.Nanosecond) {
			t.Fatal("the pause ended early")
		}
	})
	if allocs != 0 {
		t.Errorf("a refusal pause made %v allocations, want 0", allocs)
	}
}

func TestReaderPauseEndsWithTheStream(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ss := &session{srv: &Server{}, stream: contextOnly{ctx: ctx}}
	if !ss.pauseReading(time.Nanosecond) {
		t.Fatal("the first pause ended early")
	}
	cancel()
	if ss.pauseReading(time.Hour) {
		t.Fatal("a pause outlasted its stream")
	}
}

// The reader decodes each command into a request its turns have handed
// back: a flood of commands made one a command.
func TestHandledRequestsAreDecodedIntoAgain(t *testing.T) {
	var spares requestSpares
	req := spares.get()
	req.Id, req.Command = "1", &roomcastv1.SubscribeRequest_Leave{Leave: &roomcastv1.LeaveCommand{Room: "r"}}
	spares.put(req)
	again := spares.get()
	if again != req {
		t.Fatal("a handled request was not reused")
	}
	if again.GetId() != "" || again.GetCommand() != nil {
		t.Fatalf("a reused request holds its command: %v", again)
	}
	spares.put(again)
	allocs := testing.AllocsPerRun(50, func() { spares.put(spares.get()) })
	if allocs != 0 {
		t.Errorf("a reused request made %v allocations, want 0", allocs)
	}
	// Past maxSpareRequests spares, handed back requests are dropped.
	held := make([]*roomcastv1.SubscribeRequest, maxSpareRequests+2)
	for i := range held {
		held[i] = spares.get()
	}
	for _, r := range held {
		spares.put(r)
	}
	if spares.n != maxSpareRequests {
		t.Errorf("%d spares kept, want %d", spares.n, maxSpareRequests)
	}
}
