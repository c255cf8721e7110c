package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/redistest"
)

// gatedEngine is a real engine whose Track waits until gate is closed, so
// that a join stays deferred for as long as a test needs.
type gatedEngine struct {
	broker.Engine
	gate chan struct{}
}

func (e gatedEngine) Track(ctx context.Context, room string, after *broker.Position, limit int) (broker.Position, []broker.Entry, error) {
	select {
	case <-e.gate:
	case <-ctx.Done():
		return broker.Position{}, nil, ctx.Err()
	}
	return e.Engine.Track(ctx, room, after, limit)
}

var gatedPrefixes atomic.Int64

// A leave of a room whose join still waits on the engine answers the join
// with CANCELLED and itself with its own result, each under its own id:
// when the two replies shared the session's one reply message, the leave's
// went out under the join's id, and a client awaiting its leave waited on.
func TestALeaveCancellingADeferredJoinIsAnsweredUnderItsOwnID(t *testing.T) {
	redis := redistest.Start(t)
	gate := make(chan struct{})
	defer close(gate)
	factory := redisengine.Factory(context.Background(), redisengine.Config{Addrs: []string{redis.Addr}, Prefix: fmt.Sprint("gated", gatedPrefixes.Add(1))})
	srv := newTestServer(t, WithBrokerOptions(broker.WithEngine(func(cfg broker.EngineConfig) (broker.Engine, error) {
		e, err := factory(cfg)
		if err != nil {
			return nil, err
		}
		return gatedEngine{Engine: e, gate: gate}, nil
	})))
	f := openFake(t, srv, 1)
	f.send(&roomcastv1.SubscribeRequest{Id: "J", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: "r"}}})
	f.send(&roomcastv1.SubscribeRequest{Id: "L", Command: &roomcastv1.SubscribeRequest_Leave{Leave: &roomcastv1.LeaveCommand{Room: "r"}}})
	replies := map[string]*roomcastv1.CommandReply{}
	for len(replies) < 2 {
		if r := f.response().GetReply(); r != nil {
			if replies[r.GetId()] != nil {
				t.Fatalf("a second reply with id %q: %v", r.GetId(), r)
			}
			replies[r.GetId()] = r
		}
	}
	if j := replies["J"]; j.GetError().GetCode() != 1 || j.GetResult() != nil {
		t.Errorf("the join's reply: %v, want only the error CANCELLED", j)
	}
	if l := replies["L"]; l == nil || l.GetError() != nil || l.GetLeave().GetRoom() != "r" {
		t.Errorf("the leave's reply: %v, want room r left", l)
	}
}
