package redisengine_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/brokertest"
	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/internal/redistest"
)

// The hub on the Redis engine keeps the contract the in-memory hub keeps:
// the same suite, unchanged, each case in a key space of its own on one
// redis-server.
func TestContract(t *testing.T) {
	srv := redistest.Start(t)
	var cases atomic.Int64
	brokertest.Run(t, func(t testing.TB, opts ...broker.Option) *broker.Hub {
		t.Helper()
		cfg := redisengine.Config{Addrs: []string{srv.Addr}, Prefix: fmt.Sprint("contract", cases.Add(1))}
		hub, err := broker.New(append(opts, broker.WithEngine(redisengine.Factory(context.Background(), cfg)))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hub.Close() })
		return hub
	})
}
