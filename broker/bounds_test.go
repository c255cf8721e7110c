package broker_test

import (
	"testing"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/brokertest"
)

// FuzzHistory searches the in-memory hub's History for any after, limit and
// direction that disagrees with the contract suite's model (the suite
// itself checks the boundary offsets for every engine).
func FuzzHistory(f *testing.F) {
	brokertest.FuzzHistory(f, func(t testing.TB, opts ...broker.Option) *broker.Hub { return newBroker(t, opts...) })
}
