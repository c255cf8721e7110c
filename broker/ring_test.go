package broker_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/roomcast/roomcast/broker"
)

// Random publishes and collects against a small backlog, so the ring grows,
// wraps and evicts: a subscriber either gets every message in order or a
// LagError, never a gap.
func TestRingNeverSkipsSilently(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			b := newBroker(t, broker.WithBacklog(1+rng.IntN(40), 64+rng.IntN(4096)))
			s := b.NewSubscriber("S")
			s.Join(context.Background(), "r", broker.JoinOptions{})
			var got uint64
			for range 2000 {
				if rng.IntN(3) > 0 {
					publish(t, b, "r", fmt.Sprint(rng.IntN(100)), "")
					continue
				}
				frame, err := s.Collect(1 + rng.IntN(300))
				if lag := (*broker.LagError)(nil); errors.As(err, &lag) {
					if lag.Sent["r"] != got {
						t.Fatalf("lag says %d sent, subscriber has %d", lag.Sent["r"], got)
					}
					s.Close()
					s = b.NewSubscriber("S")
					res, _ := s.Join(context.Background(), "r", broker.JoinOptions{})
					got = res.Offset
					continue
				} else if err != nil {
					t.Fatal(err)
				}
				s.Commit()
				for _, m := range decode(t, frame) {
					if m.GetOffset() != got+1 {
						t.Fatalf("offset %d after %d", m.GetOffset(), got)
					}
					got = m.GetOffset()
				}
			}
		})
	}
}
