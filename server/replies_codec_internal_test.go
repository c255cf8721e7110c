package server

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/protostrings"
)

// TestCommandReplyCodec checks which replies the codec encodes without its
// UTF-8 walk (joinedOrLeft), and that it encodes every one as proto does,
// or, for a string that is not UTF-8, fails as proto does.
func TestCommandReplyCodec(t *testing.T) {
	reply := func(id string, res any) *roomcastv1.SubscribeResponse {
		rep := &roomcastv1.CommandReply{Id: id}
		switch r := res.(type) {
		case *roomcastv1.CommandReply_Join:
			rep.Result = r
		case *roomcastv1.CommandReply_Leave:
			rep.Result = r
		}
		return &roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Reply{Reply: rep}}
	}
	join := func(room, epoch string) *roomcastv1.CommandReply_Join {
		return &roomcastv1.CommandReply_Join{Join: &roomcastv1.JoinResult{Room: room, Offset: 7, Epoch: epoch}}
	}
	leave := func(room string) *roomcastv1.CommandReply_Leave {
		return &roomcastv1.CommandReply_Leave{Leave: &roomcastv1.LeaveResult{Room: room}}
	}
	failed := reply("1", nil)
	failed.GetReply().Error = &roomcastv1.Error{Code: 8, Message: "slow down \xff"}
	for _, c := range []struct {
		name    string
		resp    *roomcastv1.SubscribeResponse
		skipped bool // the walk left out
	}{
		{"a join", reply("1", join("r", "E1")), true},
		{"a leave", reply("2", leave("r")), true},
		{"an error", failed, false},
		{"a join's id not UTF-8", reply("\xff", join("r", "E1")), false},
		{"a join's room not UTF-8", reply("1", join("r\xff", "E1")), false},
		{"a join's epoch not UTF-8", reply("1", join("r", "E\xff")), false},
		{"a leave's id not UTF-8", reply("\xff", leave("r")), false},
		{"a leave's room not UTF-8", reply("2", leave("\xff")), false},
		{"a session event", &roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Session{Session: &roomcastv1.SessionEvent{SessionId: "s"}}}, false},
	} {
		if got := joinedOrLeft(c.resp); got != c.skipped {
			t.Errorf("%s: joinedOrLeft = %v, want %v", c.name, got, c.skipped)
		}
		encodesAsProto(t, c.name, c.resp)
	}
}

// joinedOrLeft vouches for a join's or a leave's strings: a string field
// added to their results would go out unchecked: it must be added to
// joinedOrLeft and here.
func TestJoinedOrLeftKnowsEveryString(t *testing.T) {
	none := func(protoreflect.MessageDescriptor) bool { return false }
	for _, c := range []struct {
		m    proto.Message
		want []string
	}{
		{&roomcastv1.JoinResult{}, []string{"roomcast.v1.JoinResult.epoch", "roomcast.v1.JoinResult.room"}},
		{&roomcastv1.LeaveResult{}, []string{"roomcast.v1.LeaveResult.room"}},
	} {
		if got := protostrings.Fields(c.m.ProtoReflect().Descriptor(), none); !slices.Equal(got, c.want) {
			t.Errorf("the strings of a %T are %q; joinedOrLeft checks %q", c.m, got, c.want)
		}
	}
	// And of the messages that carry them, their own strings, the results
	// above left out (and a reply's error, which is not a join's or a
	// leave's).
	for _, c := range []struct {
		m    proto.Message
		want []string
	}{
		{&roomcastv1.SubscribeResponse{}, nil},
		{&roomcastv1.CommandReply{}, []string{"roomcast.v1.CommandReply.id"}},
	} {
		own := c.m.ProtoReflect().Descriptor()
		others := func(md protoreflect.MessageDescriptor) bool { return md.FullName() != own.FullName() }
		if got := protostrings.Fields(own, others); !slices.Equal(got, c.want) {
			t.Errorf("the own strings of a %T are %q; joinedOrLeft checks %q", c.m, got, c.want)
		}
	}
}
