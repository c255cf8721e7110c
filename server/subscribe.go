package server

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// subscribeStream is what a session needs of its Subscribe stream: less
// than the generated stream type, so tests can run sessions on a fake one.
type subscribeStream interface {
	Context() context.Context
	SendMsg(m any) error // must encode m before it returns, and keep none of it (see replies.go)
	RecvMsg(m any) error
}

// commandsPerWake bounds the commands handled in one turn, so a stream of
// commands cannot starve the stream's messages or its connection's other
// streams.
const commandsPerWake = 16

// session is one Subscribe stream. One goroutine of its own, the handler,
// which reads the commands and returns the status (see selfread.go).
// Everything else (commands, collecting messages, every Send) happens in
// turns on its connection's writer (see writer.go), which owns the
// subscriber while it holds the session (see schedule.go). A Send blocked
// because the client stopped reading is unblocked only by grpc-go finishing
// the stream: by endWith writing the status, or the handler returning.
type session struct {
	srv     *Server
	id      string
	stream  subscribeStream
	conn    *outConn
	sub     *broker.Subscriber
	cmds    chan command
	pending atomic.Int32 // commands in cmds, read without touching the channel
	end     chan error   // the first reason to end the stream; see endWith
	stalled atomic.Bool  // cut off by the sweeper for a write past the write timeout
	watch   bool         // a Watch call's: its commands' ids are room names (see watch.go)

	writeStatus statusWriter // ends the stream at once (see selfread.go); nil: a goroutine reads
	credPlace   *admission   // the credential's place, given back once however often (see admitted); nil: none
	placed      atomic.Bool  // holds a place in srv.streams (see serve and leave)

	mu     sync.Mutex
	sched  schedState  // guarded by mu; see schedule.go
	expiry *time.Timer // guarded by mu: ends the stream when its credential expires; nil while it does not

	joinReady atomic.Bool // a deferred join became ready: finish it in a turn (see joins.go)

	// Owned by the writer holding the session.
	joins     []*deferredJoin // join commands waiting for their join, in command order
	spareJoin *deferredJoin   // one whose join was ready at once, for the next (see beginJoin)
	replies   replyScratch    // the messages of each command reply (see replies.go)
	joinCtx   context.Context // the joins' context, charging joinOwner (see joinContext)
	joinOwner string
	greeted   bool
	out       frame // the frame being sent: SendMsg does not keep it
	servedAt  int64 // the server's clock when the pass that last sent the session a batch began; 0 before (see passPacer.served)
	identity  *auth.Identity
	record    *callRecord // the access log's; nil without one

	// Owned by the reader (see cmdrate.go).
	commands   *rate.Limiter  // nil: no limit
	refused    refusals       // commands refused by a rate limit within the second, the reader's own
	streak     refusalStreak  // the run of refusals that sets the reader's pauses, the reader's own
	credential *auth.Identity // the credential's rate is kept under its subject and method, which a refresh keeps
	pause      pauseTimer     // the reader's: its pause after a refusal, its wait behind the turns

	spares requestSpares // handled requests, handed back by the turns for the reader to decode into

	gate          sendGate     // shut by the handler: no Send starts after it returns
	sendStartedAt atomic.Int64 // the server's stallClock when the current Send began; 0 when not sending
}

// Subscribe implements BrokerService.Subscribe.
func (s *Server) Subscribe(stream grpc.BidiStreamingServer[roomcastv1.SubscribeRequest, roomcastv1.SubscribeResponse]) error {
	return s.subscribe(stream)
}

// subscribe serves one Subscribe stream until it ends; tests call it with
// fake streams.
func (s *Server) subscribe(stream subscribeStream) error { return s.serve(stream, false) }

// serve serves one session until it ends: a Subscribe stream's, or with
// watch a Watch call's (see watch.go).
func (s *Server) serve(stream subscribeStream, watch bool) error {
	if s.isDraining() {
		return status.Error(codes.Unavailable, "server is shutting down; reconnect to another instance")
	}
	if n := s.streams.Add(1); n > int64(s.cfg.maxTotalStreams) {
		s.streams.Add(-1)
		return status.Errorf(codes.ResourceExhausted, "the server has %d subscriber streams, its limit; retry later or on another instance", s.cfg.maxTotalStreams)
	}
	// The stream's places, the server's and its credential's, are given
	// back as the handler returns, or as the session ends the stream from
	// outside, before the client hears of it (see endWith).
	// A session's fields, not closures, keep them: each closure was an
	// allocation per stream, and attack (d) opens a thousand at once.
	// The server's place is the session's before anything else can fail.
	ss := &session{srv: s}
	ss.placed.Store(true)
	defer ss.leave()
	id := newSessionID()
	ss.id, ss.stream, ss.watch = id, stream, watch
	ss.cmds, ss.end = make(chan command, commandsPerWake), make(chan error, 1)
	ss.writeStatus = statusWriterOf(stream.Context())
	ss.credPlace = admissionOf(stream.Context())
	ss.identity = s.access.identity(stream.Context())
	ss.commands = s.cfg.commandLimiter()
	ss.conn = s.connOf(stream.Context())
	ss.credential = ss.identity
	ss.sub = s.broker.NewNotifiedSubscriber(id, ss.wake)
	ss.record = recordOf(stream.Context())
	ss.record.stream(id, ss.sub)
	defer s.access.removeSession(s.access.addSession(stream.Context(), ss.sub, ss.identity, ss.endWith))
	ss.setExpiry(ss.identity.Expiry)
	s.live.Store(ss, struct{}{})
	defer s.live.Delete(ss)
	return ss.serve()
}

// wait returns the status the stream ends with. A drain is a turn's to
// notice, once the session has sent what it holds; the shutdown deadline
// cancels the stream if it cannot. One channel and the stream's context are
// all it waits on. The reason in end comes first: when endWith ends the
// stream at once, its context ends after the reason is there.
func (ss *session) wait() error {
	var err error
	select {
	case err = <-ss.end:
	case <-ss.stream.Context().Done():
		select {
		case err = <-ss.end:
		default:
			err = status.FromContextError(ss.stream.Context().Err()).Err()
		}
	}
	// A Send under way is cancelled by returning; none starts after this.
	ss.gate.shut()
	ss.close()
	return err
}

// endWith ends the stream with err, unless it is already ending. It may be
// called from any goroutine.
func (ss *session) endWith(err error) {
	select {
	case ss.end <- err:
		// Before the client hears, so that it may open another at once,
		// and finds the id it saw end refused.
		ss.leave()
		ss.credPlace.giveBack()
		if ss.srv != nil {
			ss.srv.access.forgetSession(ss.id)
		}
		if ss.writeStatus != nil {
			ss.writeStatus.WriteStatus(status.Convert(err))
		}
	default:
	}
}

// leave gives the stream's place among the server's back, once however
// often called; a session that serve did not start (a test's) holds none.
func (ss *session) leave() {
	if ss.placed.CompareAndSwap(true, false) {
		ss.srv.streams.Add(-1)
	}
}

// setExpiry makes the stream end when its credential expires at t; the zero
// t means never.
func (ss *session) setExpiry(t time.Time) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.expiry != nil {
		ss.expiry.Stop() // if it already fired, the stream is ending anyway
	}
	if t.IsZero() || ss.ended() {
		return
	}
	if ss.expiry == nil {
		ss.expiry = time.AfterFunc(time.Until(t), func() {
			ss.endWith(status.Error(codes.Unauthenticated, "the stream's credential expired; send a refresh command before it does, or reconnect with a new one"))
		})
		return
	}
	ss.expiry.Reset(time.Until(t))
}

// stall ends the session as a slow consumer whose current Send has lasted
// longer than the write timeout.
func (ss *session) stall() {
	if !ss.stalled.CompareAndSwap(false, true) {
		return
	}
	ss.sub.Stalled()
	ss.srv.cfg.log.Info("slow consumer cut off", "session", ss.id, "reason", "write timeout")
	ss.endWith(status.Errorf(codes.ResourceExhausted, "slow consumer: one write took longer than %v; %s", ss.srv.cfg.writeTimeout, broker.FormatSent(ss.sub.Sent())))
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newSessionID returns 128 random bits, so session ids cannot be guessed.
func newSessionID() string {
	var b [16]byte
	rand.Read(b[:]) // documented to always fill b
	return idEncoding.EncodeToString(b[:])
}
