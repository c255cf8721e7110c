package broker_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A PublishTime the message holds is stamped in place: the caller's memory.
func TestPublishStampsTheGivenTime(t *testing.T) {
	b := newBroker(t, broker.WithHistory(16, time.Hour))
	ts := new(timestamppb.Timestamp)
	msg := &roomcastv1.Message{Room: "r", PublishTime: ts, Payload: &roomcastv1.Message_Text{Text: "x"}}
	before := time.Now()
	if _, _, err := b.PublishWith(context.Background(), msg, broker.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if msg.PublishTime != ts || ts.AsTime().Before(before.Truncate(time.Microsecond)) {
		t.Errorf("publish time %v (given %p, now %p), published after %v", ts.AsTime(), ts, msg.PublishTime, before)
	}
}
