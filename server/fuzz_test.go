package server

import (
	"context"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// FuzzCommand runs arbitrary Subscribe commands, two in a row on one
// session, as the stream's writer does: nothing panics, every failure is an
// error reply with a real code and a readable message, the room limit holds,
// and closing the session leaves no room behind.
func FuzzCommand(f *testing.F) {
	for _, req := range []*roomcastv1.SubscribeRequest{
		{Id: "1", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: "chat.lobby"}}},
		{Id: "2", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: "r", Presence: true, Info: map[string]string{"k": "v"}, PresenceEvents: true, Position: &roomcastv1.Position{Offset: 3, Epoch: "E"}}}},
		{Id: "3", Command: &roomcastv1.SubscribeRequest_Leave{Leave: &roomcastv1.LeaveCommand{Room: "chat.lobby"}}},
		{Id: "4", Command: &roomcastv1.SubscribeRequest_Refresh{Refresh: &roomcastv1.RefreshCommand{Token: "x"}}},
		{Id: "5"},
	} {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, b)
	}
	srv, err := New(WithBrokerOptions(broker.WithHistory(0, 0)), WithMaxRoomsPerSession(2), WithCommandRate(0, 0), WithCredentialCommandRate(0, 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	f.Fuzz(func(t *testing.T, first, second []byte) {
		ss := &session{srv: srv, id: "FUZZ", stream: contextOnly{ctx: context.Background()}, sub: srv.broker.NewSubscriber("FUZZ"), identity: srv.access.identity(context.Background())}
		for _, raw := range [][]byte{first, second} {
			req := new(roomcastv1.SubscribeRequest)
			if proto.Unmarshal(raw, req) != nil {
				continue
			}
			reply := &roomcastv1.CommandReply{Id: req.GetId()}
			if err := ss.execute(nil, req, reply); err != nil { // no send: the in-memory hub answers every join at once
				st, ok := status.FromError(err)
				if !ok || st.Code() == codes.OK || st.Code() == codes.Unknown || st.Code() == codes.Internal || !utf8.ValidString(st.Message()) || st.Message() == "" {
					t.Fatalf("command %v failed with %v", req, err)
				}
			} else if reply.GetResult() == nil {
				t.Fatalf("command %v succeeded with no result", req)
			}
			if ss.sub.Rooms() > 2 {
				t.Fatalf("session in %d rooms, over its limit", ss.sub.Rooms())
			}
		}
		ss.sub.Close()
		if n := srv.broker.Stats().Rooms; n != 0 {
			t.Fatalf("%d rooms left after the session closed", n)
		}
	})
}

// contextOnly is a stream that has a context and nothing else: execute needs
// no more from it while every join is answered at once.
type contextOnly struct {
	subscribeStream
	ctx context.Context
}

func (c contextOnly) Context() context.Context { return c.ctx }
