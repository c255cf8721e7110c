package server

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// refresh runs a refresh command: the token becomes the stream's credential,
// its expiry the stream's, and its grants the stream's, so the session
// leaves every room they no longer allow and the reply names them.
func (ss *session) refresh(cmd *roomcastv1.RefreshCommand, reply *roomcastv1.CommandReply) error {
	id, err := ss.srv.access.refresh(ss.id, ss.identity, cmd.GetToken())
	if err != nil {
		return err
	}
	ss.identity = id
	ss.setExpiry(id.Expiry)
	res := &roomcastv1.RefreshResult{LeftRooms: ss.leaveDisallowed()}
	if !id.Expiry.IsZero() {
		res.ExpireTime = timestamppb.New(id.Expiry)
	}
	reply.Result = &roomcastv1.CommandReply_Refresh{Refresh: res}
	return nil
}

// leaveDisallowed leaves the rooms the session's identity no longer allows
// it to be in, and returns their names: those outside its subscribe grants,
// and those joined with presence or presence events outside its presence
// grants. Such a room is left as a whole rather than kept without presence,
// so that a client that asked for presence events is never left believing
// it still gets them.
func (ss *session) leaveDisallowed() []string {
	var left []string
	for _, m := range ss.sub.Memberships() {
		ok := ss.identity.Allows(auth.Subscribe, m.Room)
		if ok && (m.Presence || m.Events) {
			ok = ss.identity.Allows(auth.Presence, m.Room)
		}
		if !ok && ss.sub.Leave(m.Room) == nil {
			left = append(left, m.Room)
		}
	}
	return left
}
