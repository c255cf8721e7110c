package server

import (
	"errors"
	"sync/atomic"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A join command is answered in the turn that handles it when its join is
// ready at once, as every join of the in-memory hub is. A join that needs an
// engine's round trip first never holds up the connection's writer: the
// command's turn goes on without a reply, the broker calls the session's
// readiness callback when the join can be finished, and a later turn
// finishes it and sends the reply, before any message of the room.
//
// A join's callback and the command's turn race to say how it was ready:
//
//	begun ──callback first──▶ readyAtOnce   (the turn finishes it at once)
//	  └─────turn first──────▶ deferred ──callback──▶ joinReady set, session woken

// Join readiness, decided once per join by whichever comes first.
const (
	joinBegun int32 = iota
	joinReadyAtOnce
	joinDeferred
)

// deferredJoin is a join command waiting for its join to be ready.
type deferredJoin struct {
	id      string // the command's id, for its reply
	state   atomic.Int32
	p       *broker.PendingJoin
	ss      *session
	onReady func() // its readiness callback, made once: a spare is reused
}

func newDeferredJoin(ss *session) *deferredJoin {
	j := &deferredJoin{ss: ss}
	j.onReady = j.ready
	return j
}

// ready is the join's readiness callback.
func (j *deferredJoin) ready() {
	if !j.state.CompareAndSwap(joinBegun, joinReadyAtOnce) {
		j.ss.joinReady.Store(true)
		j.ss.wake()
	}
}

// errReplyLater is execute's way of saying that the reply will be sent by a
// later turn.
var errReplyLater = errors.New("reply in a later turn")

// beginJoin begins a join and finishes it at once if it is ready, filling
// reply; otherwise it keeps it for a later turn and returns errReplyLater.
//
// A join that was ready at once, as every join of the in-memory hub is,
// leaves its deferredJoin for the next: its callback has run, and was its
// last use of it (BeginJoin calls it once), so joins cost no allocation of
// their own here.
func (ss *session) beginJoin(req *roomcastv1.SubscribeRequest, room string, opts broker.JoinOptions, reply *roomcastv1.CommandReply) error {
	j := ss.spareJoin
	if j == nil {
		j = newDeferredJoin(ss)
	}
	ss.spareJoin = nil
	j.id, j.p = req.GetId(), nil
	j.state.Store(joinBegun)
	p, err := ss.sub.BeginJoin(ss.joinContext(), room, opts, j.onReady)
	if err != nil {
		ss.spareJoin = j // BeginJoin keeps no callback it refused
		return brokerStatus(err)
	}
	if j.state.CompareAndSwap(joinBegun, joinDeferred) {
		j.p = p
		ss.joins = append(ss.joins, j)
		return errReplyLater
	}
	ss.spareJoin = j
	return ss.finishJoin(p, reply)
}

// finishJoin finishes p and fills reply with its result.
func (ss *session) finishJoin(p *broker.PendingJoin, reply *roomcastv1.CommandReply) error {
	res, err := ss.sub.FinishJoin(p)
	if err != nil {
		return brokerStatus(err)
	}
	ss.joined(reply, p.Room(), res)
	ss.record.room(p.Room())
	return nil
}

// finishReadyJoins finishes the deferred joins that are ready and sends
// their replies, in the order their commands came.
func (ss *session) finishReadyJoins(w *connWriter) error {
	if !ss.joinReady.Swap(false) {
		return nil
	}
	kept := ss.joins[:0]
	for i, j := range ss.joins {
		if !j.p.Ready() {
			kept = append(kept, j)
			continue
		}
		reply := ss.newReply(j.id)
		ss.fail(reply, ss.finishJoin(j.p, reply))
		if err := ss.sendReply(w, reply); err != nil {
			ss.joins = append(kept, ss.joins[i+1:]...)
			return err
		}
	}
	clear(ss.joins[len(kept):])
	ss.joins = kept
	return nil
}

// cancelDeferredJoin answers a deferred join of room, which a leave is about
// to cancel, with the cancellation.
func (ss *session) cancelDeferredJoin(w *connWriter, room string) error {
	for i, j := range ss.joins {
		if j.p.Room() == room {
			ss.joins = append(ss.joins[:i], ss.joins[i+1:]...)
			// Not the session's reply (newReply), which the leave is
			// being answered in: a rare path, it has one of its own.
			reply := &roomcastv1.CommandReply{Id: j.id}
			ss.fail(reply, brokerStatus(broker.ErrCancelled))
			return ss.sendReply(w, reply)
		}
	}
	return nil
}
