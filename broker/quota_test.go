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

func publishAs(b *broker.Hub, owner, room, text string) error {
	ctx := broker.WithOwner(context.Background(), owner)
	_, _, err := b.Publish(ctx, &roomcastv1.Message{Room: room, Payload: &roomcastv1.Message_Text{Text: text}}, "")
	return err
}

// One tenant cannot take the whole room limit: past its quota its new rooms
// are refused, while another tenant's are not, and the rooms it frees count
// no more.
func TestRoomQuotaIsPerOwner(t *testing.T) {
	b := newBroker(t, broker.WithMaxRooms(10), broker.WithOwnerQuotas(3, 0), broker.WithHistory(0, 0))
	ctx := broker.WithOwner(context.Background(), "mallory")
	var subs []*broker.Subscriber
	for i := range 3 {
		s := b.NewSubscriber(fmt.Sprint("S", i))
		if _, err := s.Join(ctx, fmt.Sprint("m", i), broker.JoinOptions{}); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	extra := b.NewSubscriber("X")
	defer extra.Close()
	if _, err := extra.Join(ctx, "m3", broker.JoinOptions{}); !errors.Is(err, broker.ErrRoomQuota) {
		t.Fatalf("a fourth room for mallory: %v, want ErrRoomQuota", err)
	}
	if _, err := extra.Join(ctx, "m0", broker.JoinOptions{}); err != nil {
		t.Errorf("joining a room that exists costs no quota: %v", err)
	}
	alice := b.NewSubscriber("A")
	defer alice.Close()
	if _, err := alice.Join(broker.WithOwner(context.Background(), "alice"), "a0", broker.JoinOptions{}); err != nil {
		t.Errorf("another owner's room: %v", err)
	}
	subs[2].Close() // frees m2
	if _, err := subs[1].Join(ctx, "m4", broker.JoinOptions{}); err != nil {
		t.Errorf("after freeing a room: %v", err)
	}
	for _, s := range subs {
		s.Close()
	}
}

// One tenant cannot take the whole retained budget: past its quota its
// publishes are refused, while another tenant's go on, and what is evicted
// counts no more.
func TestBytesQuotaIsPerOwner(t *testing.T) {
	b := newBroker(t, broker.WithBacklog(100, 8<<10), broker.WithMaxRetainedBytes(1<<20), broker.WithOwnerQuotas(0, 16<<10), broker.WithHistory(4, time.Hour))
	text := strings.Repeat("x", 1000)
	var err error
	rooms := 0
	for ; rooms < 100; rooms++ {
		if err = publishAs(b, "mallory", fmt.Sprint("m", rooms), text); err != nil {
			break
		}
	}
	if !errors.Is(err, broker.ErrBytesQuota) || rooms < 10 || rooms > 16 {
		t.Fatalf("after %d rooms of 1 KB: %v, want ErrBytesQuota after about 16", rooms, err)
	}
	if err := publishAs(b, "alice", "a", text); err != nil {
		t.Errorf("another owner: %v", err)
	}
	// A room keeps 4 messages: mallory's fifth to m0 evicts its first.
	for i := range 4 {
		if err := publishAs(b, "alice", "m0", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := publishAs(b, "mallory", "m0", text); err != nil {
		t.Errorf("after alice's messages evicted mallory's: %v", err)
	}
}

// PublishOptions.Owner charges a publish to its owner as WithOwner does:
// its bytes count against that owner's quota, not the context's, and its
// idempotency key is that owner's.
func TestPublishOptionsOwner(t *testing.T) {
	b := newBroker(t, broker.WithBacklog(100, 8<<10), broker.WithMaxRetainedBytes(1<<20), broker.WithOwnerQuotas(0, 4<<10), broker.WithHistory(100, time.Hour))
	asAlice := broker.WithOwner(context.Background(), "alice")
	publish := func(ctx context.Context, owner, room, key string) (uint64, error) {
		msg := &roomcastv1.Message{Room: room, Payload: &roomcastv1.Message_Text{Text: strings.Repeat("x", 1000)}}
		off, _, err := b.PublishWith(ctx, msg, broker.PublishOptions{Owner: owner, IdempotencyKey: key})
		return off, err
	}
	var err error
	n := 0
	for ; n < 10 && err == nil; n++ {
		_, err = publish(asAlice, "mallory", fmt.Sprint("m", n), "")
	}
	if !errors.Is(err, broker.ErrBytesQuota) {
		t.Fatalf("mallory's 10 KB, named in the options: %v, want ErrBytesQuota", err)
	}
	if _, err := publish(asAlice, "", "a", ""); err != nil {
		t.Errorf("alice's, named by the context, after mallory's quota is used up: %v", err)
	}
	first, err := publish(context.Background(), "bob", "k", "key")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := publish(broker.WithOwner(context.Background(), "bob"), "", "k", "key"); again != first {
		t.Errorf("bob's key again, owner from the context: offset %d, want %d", again, first)
	}
	if other, _ := publish(asAlice, "", "k", "key"); other == first {
		t.Errorf("alice's same key: offset %d, deduplicated as bob's", other)
	}
}
