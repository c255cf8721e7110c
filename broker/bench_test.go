package broker_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// BenchmarkPublish measures publish → encode → append to the ring with
// every subscriber of the room parked, then busy. Bytes and allocations per
// publish must not grow with the room size: subscribers share the encoded
// message, and the waiter list is reused.
func BenchmarkPublish(b *testing.B) {
	payload := make([]byte, 1024)
	for _, size := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprintf("subscribers=%d", size), func(b *testing.B) {
			br := newBroker(b)
			for i := range size {
				s := br.NewSubscriber(fmt.Sprint("S", i))
				s.Join(context.Background(), "room", broker.JoinOptions{})
				s.Park()
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				msg := &roomcastv1.Message{Room: "room", Payload: &roomcastv1.Message_Data{Data: payload}}
				if _, _, err := br.Publish(ctx, msg, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFanout is a publish followed by every subscriber collecting it:
// the cost per delivery, with the encode paid once per publish.
func BenchmarkFanout(b *testing.B) {
	payload := make([]byte, 1024)
	for _, size := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprintf("subscribers=%d", size), func(b *testing.B) {
			br := newBroker(b, broker.WithBacklog(1024, 8<<20))
			subs := make([]*broker.Subscriber, size)
			for i := range subs {
				subs[i] = br.NewSubscriber(fmt.Sprint("S", i))
				subs[i].Join(context.Background(), "room", broker.JoinOptions{})
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				msg := &roomcastv1.Message{Room: "room", Payload: &roomcastv1.Message_Data{Data: payload}}
				if _, _, err := br.Publish(ctx, msg, ""); err != nil {
					b.Fatal(err)
				}
				for _, s := range subs {
					if _, err := s.Collect(256 << 10); err != nil {
						b.Fatal(err)
					}
					s.Commit()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/delivery")
		})
	}
}
