package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Many rooms of large messages cannot take more memory than the budget: a
// publish past it is refused, and every room's rings together stay under it.
func TestPublishPastTheRetainedBudgetIsRefused(t *testing.T) {
	const budget = 64 << 10
	b := newBroker(t, broker.WithBacklog(100, 8<<10), broker.WithMaxRetainedBytes(budget), broker.WithHistory(100, time.Hour))
	text := strings.Repeat("x", 1000)
	refused := 0
	for i := range 200 {
		_, _, err := b.Publish(context.Background(), &roomcastv1.Message{Room: fmt.Sprint("room", i), Payload: &roomcastv1.Message_Text{Text: text}}, "")
		switch {
		case errors.Is(err, broker.ErrOverBudget):
			refused++
		case err != nil:
			t.Fatal(err)
		}
		if got := b.Stats().Retained; got > budget {
			t.Fatalf("after %d publishes, %d bytes retained: over the budget of %d", i+1, got, budget)
		}
	}
	if refused == 0 {
		t.Fatal("200 KB published into a 64 KiB budget, and nothing refused")
	}
}

// Once the budget is nearly used, the janitor drops the history of the idle
// rooms published to least recently, and a resume into it is not recovered.
func TestJanitorReclaimsIdleRoomsOldestFirst(t *testing.T) {
	const budget = 64 << 10
	b := newBroker(t, broker.WithBacklog(100, 8<<10), broker.WithMaxRetainedBytes(budget), broker.WithHistory(100, 40*time.Second))
	text := strings.Repeat("x", 1000)
	var epochs []string
	for i := 0; ; i++ {
		_, epoch, err := b.Publish(context.Background(), &roomcastv1.Message{Room: fmt.Sprint("room", i), Payload: &roomcastv1.Message_Text{Text: text}}, "")
		if errors.Is(err, broker.ErrOverBudget) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		epochs = append(epochs, epoch)
	}
	waitFor(t, func() bool { st := b.Stats(); return st.Reclaimed > 0 && st.Retained <= budget/4*3 })
	if h := history(t, b, "room0", 0, 10, false); len(h.GetMessages()) != 0 {
		t.Errorf("the least recently published room kept %d messages", len(h.GetMessages()))
	}
	last := fmt.Sprint("room", len(epochs)-1)
	if h := history(t, b, last, 0, 10, false); len(h.GetMessages()) != 1 {
		t.Errorf("the most recently published room kept %d messages, want 1", len(h.GetMessages()))
	}
	if _, res := joinAt(t, b, "S", "room0", &broker.Position{Offset: 0, Epoch: epochs[0]}); res.Recovered {
		t.Errorf("resume into a reclaimed room: %+v, want not recovered", res)
	}
	if _, _, err := b.Publish(context.Background(), &roomcastv1.Message{Room: "new", Payload: &roomcastv1.Message_Text{Text: text}}, ""); err != nil {
		t.Errorf("publish after the reclaim: %v", err)
	}
}
