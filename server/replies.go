package server

import (
	"context"
	"unicode/utf8"

	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A stream's command replies are built in messages its session keeps and
// reuses, where each reply took five or six new ones: under a flood of
// commands (attack (e) of issue #13) the server made them by the hundred
// thousand a second, and a bystander's tail paid for the collections. The
// writer holding the session builds and sends one reply at a time, and
// the server requires of a subscribeStream that its SendMsg encode its
// message before it returns and keep none of it (grpc-go's does, and
// interceptors and stats handlers given with WithGRPCOptions must not keep
// one either), so no reply outlives its send. A reply sent while another
// is being built (a leave's cancelling a deferred join) is made anew.

// replyScratch is a session's reply messages, owned by the writer holding
// the session.
type replyScratch struct {
	resp   roomcastv1.SubscribeResponse
	event  roomcastv1.SubscribeResponse_Reply
	reply  roomcastv1.CommandReply
	err    roomcastv1.Error
	join   roomcastv1.CommandReply_Join
	joined roomcastv1.JoinResult
	leave  roomcastv1.CommandReply_Leave
	left   roomcastv1.LeaveResult
}

// newReply returns the session's reply to the command id, emptied; it is
// valid until the next call.
func (ss *session) newReply(id string) *roomcastv1.CommandReply {
	r := &ss.replies.reply
	r.Id, r.Error, r.Result = id, nil, nil
	return r
}

// fail makes reply an error reply if err is not nil.
func (ss *session) fail(reply *roomcastv1.CommandReply, err error) {
	if err == nil {
		return
	}
	st, _ := status.FromError(err) // not a copy, for a status error
	e := &ss.replies.err
	e.Code, e.Message, e.RetryAfter = int32(st.Code()), st.Message(), nil
	if re, ok := err.(*retryError); ok {
		e.RetryAfter = re.after // shared, and never modified
	}
	reply.Error, reply.Result = e, nil
}

// joined makes reply a join's.
func (ss *session) joined(reply *roomcastv1.CommandReply, room string, res broker.JoinResult) {
	r := &ss.replies
	r.joined.Room, r.joined.Offset, r.joined.Epoch, r.joined.Recovered = room, res.Offset, res.Epoch, res.Recovered
	r.join.Join = &r.joined
	reply.Result = &r.join
}

// left makes reply a leave's.
func (ss *session) left(reply *roomcastv1.CommandReply, room string) {
	r := &ss.replies
	r.left.Room = room
	r.leave.Leave = &r.left
	reply.Result = &r.leave
}

func (ss *session) sendReply(w *connWriter, reply *roomcastv1.CommandReply) error {
	r := &ss.replies
	r.event.Reply = reply
	r.resp.Event = &r.event
	return ss.send(w, &r.resp)
}

// joinContext is the context of the session's joins, which charges the
// rooms they make to its credential's subject; made again only when a
// refresh changes the subject.
func (ss *session) joinContext() context.Context {
	if ss.joinCtx == nil || ss.joinOwner != ss.identity.Subject {
		ss.joinCtx, ss.joinOwner = broker.WithOwner(ss.stream.Context(), ss.identity.Subject), ss.identity.Subject
	}
	return ss.joinCtx
}

// joinedOrLeft reports whether resp is the reply of a join or a leave that
// succeeded, with every string valid UTF-8: checked here on each (a short
// id, a room name, an epoch), which costs less than the codec's walk over
// the encoding, so the codec leaves the walk out. Other replies keep it.
func joinedOrLeft(resp *roomcastv1.SubscribeResponse) bool {
	rep := resp.GetReply()
	if rep == nil || rep.GetError() != nil || !utf8.ValidString(rep.GetId()) {
		return false
	}
	switch res := rep.GetResult().(type) {
	case *roomcastv1.CommandReply_Join:
		j := res.Join
		return j != nil && utf8.ValidString(j.GetRoom()) && utf8.ValidString(j.GetEpoch())
	case *roomcastv1.CommandReply_Leave:
		return res.Leave != nil && utf8.ValidString(res.Leave.GetRoom())
	}
	return false
}
