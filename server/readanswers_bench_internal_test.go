package server

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// BenchmarkReadAnswers is what the server does for an allowed History or
// Presence call of issue #13's attack (f), from the handler to the bytes
// its codec hands the transport: History of 1000 messages of 4000 bytes
// (cut to 1 MiB), and Presence of 500 members with 100 bytes of info each.
//
//	go test ./server -run '^$' -bench BenchmarkReadAnswers -benchmem -count 5
func BenchmarkReadAnswers(b *testing.B) {
	s, err := New(WithReadRate(0, 0), WithReadByteRate(0, 0))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const room = "reads.room"
	for range 1000 {
		if _, err := s.Publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Data{Data: make([]byte, 4000)}}); err != nil {
			b.Fatal(err)
		}
	}
	info := map[string]string{"name": strings.Repeat("n", 100)}
	for i := range 500 {
		sub := s.broker.NewSubscriber(fmt.Sprint("member-", i))
		defer sub.Close()
		if _, err := sub.Join(ctx, room, broker.JoinOptions{Presence: true, Info: info}); err != nil {
			b.Fatal(err)
		}
	}
	c := newCodec()
	b.Run("History", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f, err := s.history(ctx, &roomcastv1.HistoryRequest{Room: room, Limit: 1000})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Marshal(f); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Presence", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f, err := s.presence(ctx, &roomcastv1.PresenceRequest{Room: room, Limit: 10_000})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Marshal(f); err != nil {
				b.Fatal(err)
			}
		}
	})
}
