package server

import (
	"errors"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// What one turn of a session does, on whichever writer holds it: commands
// first, then one batch of messages, then parking. Turns run with no lock
// held; send is the only place a turn calls SendMsg.

// sendGate lets a Send start only while the stream is open. A writer moves
// it from open to sending and back around each Send; the handler shuts it
// when it returns, after which no Send starts and one under way reports
// errStopped. It is atomic because every Send passes it.
//
//	open --begin--> sending --end--> open
//	any  --shut-->  shut
type sendGate struct{ v atomic.Int32 }

const (
	gateOpen    int32 = iota // no Send under way
	gateSending              // a Send under way
	gateShut                 // the handler returned
)

func (g *sendGate) begin() bool { return g.v.CompareAndSwap(gateOpen, gateSending) }

// end reports false if the gate was shut during the Send.
func (g *sendGate) end() bool { return g.v.CompareAndSwap(gateSending, gateOpen) }

func (g *sendGate) shut() { g.v.Store(gateShut) }

var errStopped = errors.New("session stopped")

// send is the only way a turn calls SendMsg. It costs a few atomic
// operations: the write timeout and the shared writer's watch are kept by
// the server's sweeper, not by a timer per Send.
func (ss *session) send(w *connWriter, m any) error {
	if !ss.gate.begin() {
		return errStopped
	}
	ss.sendStartedAt.Store(ss.srv.stallClock.Load())
	w.sendStartedAt.Store(ss.srv.detachClock.Load())
	err := ss.stream.SendMsg(m)
	w.sendStartedAt.Store(0)
	ss.sendStartedAt.Store(0)
	if !ss.gate.end() && err == nil {
		err = errStopped
	}
	return err
}

// turn runs the session's pending commands, then sends one batch of what its
// rooms have for it. It reports whether the session has more to do at once;
// if not, the subscriber is parked and wakes the session when it does. An
// error ends the session with that status.
func (ss *session) turn(w *connWriter) (more bool, err error) {
	if hook := ss.srv.cfg.turnHook; hook != nil {
		hook(ss.id)
	}
	if !ss.greeted {
		ss.greeted = true
		if err := ss.send(w, &roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Session{
			Session: &roomcastv1.SessionEvent{SessionId: ss.id},
		}}); err != nil {
			return false, err
		}
	}
	if err := ss.finishReadyJoins(w); err != nil {
		return false, err
	}
commands:
	for range commandsPerWake {
		if ss.pending.Load() == 0 {
			break commands
		}
		c := <-ss.cmds // the reader counts a command once it is in cmds
		ss.pending.Add(-1)
		err := ss.handle(w, c)
		ss.spares.put(c.req)
		if err != nil {
			return false, err
		}
	}
	ready, err := ss.collect()
	if err != nil {
		return false, err
	}
	if !ready {
		return ss.parkEmpty()
	}
	w.delivered = true
	ss.srv.writes.sends.Add(1)
	if err := ss.sendCollected(w); err != nil {
		return false, err
	}
	return ss.parkSent(), nil
}

// busy reports whether the session needs a whole turn: a greeting or
// commands, whose replies are sent before its messages.
func (ss *session) busy() bool {
	return !ss.greeted || ss.pending.Load() > 0 || ss.joinReady.Load()
}

// collect takes what the session's rooms have for it into ss.out and
// reports whether there is anything to send; if not, parkEmpty ends the turn.
func (ss *session) collect() (ready bool, err error) {
	bufs, err := ss.sub.Collect(ss.srv.cfg.maxBatchBytes)
	if err != nil {
		var lag *broker.LagError
		var gap *broker.GapError
		switch {
		case errors.As(err, &lag):
			ss.srv.cfg.log.Info("slow consumer cut off", "session", ss.id, "room", lag.Room)
		case errors.As(err, &gap) && gap.Closed:
			ss.srv.cfg.log.Info("stream ended: its room was closed by an administrator", "session", ss.id, "room", gap.Room)
		case errors.As(err, &gap):
			ss.srv.cfg.log.Warn("stream cut off: its room lost messages on this node", "session", ss.id, "room", gap.Room)
		}
		return false, brokerStatus(err)
	}
	ss.out.bufs = bufs
	return bufs != nil, nil
}

// parkEmpty ends a turn that collected nothing: it parks the session,
// reporting whether it has more to do at once, or ends it in a drain. Only
// once there is nothing to send: what was sequenced before the drain is sent
// first, so the offsets the status gives are complete.
func (ss *session) parkEmpty() (more bool, err error) {
	if ss.srv.isDraining() {
		return false, status.Errorf(codes.Unavailable, "server is shutting down; reconnect and resume; %s", broker.FormatSent(ss.sub.Sent()))
	}
	return ss.pending.Load() > 0 || ss.joinReady.Load() || !ss.sub.Park(), nil
}

// sendCollected sends what collect took.
func (ss *session) sendCollected(w *connWriter) error {
	err := ss.send(w, &ss.out)
	ss.out.bufs = nil
	if err == nil {
		ss.sub.Commit()
	}
	return err
}

// parkSent ends a turn that sent a batch, parking the session now rather
// than in a turn of its own, and reports whether it has more to do at once.
func (ss *session) parkSent() (more bool) {
	return ss.pending.Load() > 0 || ss.joinReady.Load() || ss.srv.isDraining() || !ss.sub.Park()
}
