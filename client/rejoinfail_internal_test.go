package client

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A stream whose rejoin failed is given up: the subscription reconnects
// and rejoins every room from the positions it had before that stream.
// What the stream still delivers once every rejoin has replied (the
// receiver reads it to its end: gRPC hands over what it had buffered
// before the cancel) must not be queued, nor move a room's position: the
// messages staged before it were dropped with the stream, so queueing a
// later one skipped them without a Gap, and the next rejoin resumed after
// it. (The chaos test saw it: a room's offset 8 never delivered, 9 on,
// when the rejoin of a room on a restarted Redis shard failed last.)
func TestNoMessageQueuedFromAStreamWhoseRejoinFailed(t *testing.T) {
	for _, order := range []string{"failure replied last", "failure replied first"} {
		t.Run(order, func(t *testing.T) {
			b := &roomState{name: "b", joined: true, pos: Position{Offset: 7, Epoch: "E"}}
			g := &roomState{name: "g", joined: true, pos: Position{Offset: 3, Epoch: "F"}}
			s := &Subscription{rooms: map[string]*roomState{"b": b, "g": g}, order: []string{"b", "g"}, arrived: make(chan struct{}, 1)}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := &conn{ctx: ctx, cancel: cancel, pending: make(map[string]*pending), done: make(chan struct{})}
			// What rejoin sets up, but for the sending: both rooms' joins
			// wait for their replies.
			s.mu.Lock()
			s.conn = c
			c.reconnect = &Reconnected{Attempts: 1}
			bID := s.register(c, &pending{kind: cmdJoin, room: b, rejoin: true}, joinCommand(b)).GetId()
			gID := s.register(c, &pending{kind: cmdJoin, room: g, rejoin: true}, joinCommand(g)).GetId()
			c.rejoining = 2
			s.mu.Unlock()
			ok := &roomcastv1.CommandReply{Id: bID, Result: &roomcastv1.CommandReply_Join{Join: &roomcastv1.JoinResult{Offset: 8, Epoch: "E", Recovered: true}}}
			failed := &roomcastv1.CommandReply{Id: gID, Error: &roomcastv1.Error{Code: int32(codes.Unavailable), Message: "broker: engine unavailable"}}
			msg := func(off uint64) []*Event {
				return []*Event{{Message: &Message{Room: "b", Offset: off, Payload: &roomcastv1.Message_Text{Text: "x"}}}}
			}
			if order == "failure replied last" {
				s.replied(c, ok)
				s.received(c, msg(8), false) // staged: the rejoin of g is to come
				s.replied(c, failed)
			} else {
				s.replied(c, failed)
				s.received(c, msg(8), false)
				s.replied(c, ok)
			}
			s.received(c, msg(9), false) // read after the cancel, from gRPC's buffer

			s.mu.Lock()
			defer s.mu.Unlock()
			if c.retry == nil {
				t.Fatal("the failed rejoin did not give the stream up")
			}
			if n := s.queued(); n != 0 {
				t.Errorf("%d events queued from a stream given up, first %v; want none", n, s.queue[s.qhead])
			}
			if b.pos != (Position{Offset: 7, Epoch: "E"}) {
				t.Errorf("b's position moved to %v on a stream given up; the next rejoin would skip 8", b.pos)
			}
		})
	}
}
