package broker_test

import (
	"testing"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/brokertest"
)

// The in-memory hub keeps the contract every engine keeps.
func TestContract(t *testing.T) {
	brokertest.Run(t, func(t testing.TB, opts ...broker.Option) *broker.Hub {
		return newBroker(t, opts...)
	})
}
