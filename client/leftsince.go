package client

import roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"

// A room left while its join waits for its reply (a rejoin, or a Join
// under way) is not left by a leave of its own: sent by another goroutine
// than the join's, the leave could reach the server first, be refused as
// not joined, and leave the server in the room once the join went through,
// a slot of the session taken and a later Join of the room refused as
// already joined. The join's reply undoes it instead (leftSince), and the
// Leave waits for that.

// joinPending is c's join of st waiting for its reply, if any. Caller holds
// mu.
func (c *conn) joinPending(st *roomState) *pending {
	if st == nil {
		return nil
	}
	for _, p := range c.pending {
		if p.kind == cmdJoin && p.room == st {
			return p
		}
	}
	return nil
}

// leftSince takes the reply r to p, a join on c of a room the subscription
// has left since. It returns the leave to send when the join succeeded,
// which answers the Leave waiting for it, if any; otherwise it answers that
// Leave at once: the server is not in the room. Caller holds mu.
func (s *Subscription) leftSince(c *conn, p *pending, r *roomcastv1.CommandReply) *roomcastv1.SubscribeRequest {
	if r.GetError() != nil {
		if p.leave != nil {
			p.leave <- &roomcastv1.CommandReply{Id: r.GetId()} // 1-buffered and used once
		}
		return nil
	}
	reply := p.leave
	if reply == nil {
		reply = make(chan *roomcastv1.CommandReply, 1) // nobody waits for it
	}
	return s.register(c, &pending{kind: cmdLeave, reply: reply}, leaveCommand(p.room.name))
}

// leaveCommand is the leave of room.
func leaveCommand(room string) *roomcastv1.SubscribeRequest {
	return &roomcastv1.SubscribeRequest{Command: &roomcastv1.SubscribeRequest_Leave{Leave: &roomcastv1.LeaveCommand{Room: room}}}
}
