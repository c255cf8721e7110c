package server

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// The access log is one line per finished call and per ended stream: the
// method, the client's address, the caller's subject, the status code and
// error, the duration, and what only the server knows, a unary call's room
// and a stream's session, rooms and messages. Its keys are those of
// go-grpc-middleware's logging interceptor (grpc.service, grpc.method,
// peer.address, grpc.code, ...), so that the lines read as that
// interceptor's do, but the interceptor itself is not used: it costs a
// unary Publish 96 allocations (4.7 KB) where these lines cost 29 (1.4 KB),
// and its stream wrapper reads the clock around every message a Subscribe
// stream sends, to log one line at the end (BenchmarkPublishAccessLog).
//
// A stream's call record (callRecord), in its context, collects what the
// line says beyond gRPC's own: streamCalls (streamcalls.go) puts an empty
// one there, records the subject and that the handler ran once
// authentication let the stream through, and logs it when the stream ends;
// handlers add to it through recordOf. A unary call has no record while it
// runs: unaryCalls (unary.go) makes one after the call from its caller and
// request, only for a line it logs.
//
// Calls refused with UNAUTHENTICATED or PERMISSION_DENIED are the refusal
// log's (authlog.go), which bounds its lines a second: the access log
// leaves them out, except a stream that ran and then ended so (its
// credential expired or was revoked), whose line says what it did.
// Health checks are left out too: load balancers make them every few
// seconds.

// DefaultAccessLogLevel is the level of access lines that roomcast serve
// logs unless --access-log-level says otherwise.
const DefaultAccessLogLevel = slog.LevelInfo

// WithAccessLog logs one line per finished call and per ended stream at
// level (a successful unary Publish's at debug: see below), on the
// server's logger (WithLogger): the method, the client's
// address, the caller's subject, the status code and error, the duration,
// and for streams the session, the rooms and the messages sent or
// published. Calls refused with UNAUTHENTICATED or PERMISSION_DENIED are
// left to the refusal log (WithAuthFailureLogRate), and health checks are
// not logged. A successful unary Publish is logged at slog.LevelDebug, or
// level if that is lower: it is the one call a service makes thousands of
// times a second; a failed one is logged at level. Streams, PublishStream
// included, log their end at level. Lines below the logger's level are
// dropped by it, at no allocation. The default
// is no access log (roomcast serve turns it on, at DefaultAccessLogLevel
// unless --access-log-level says otherwise).
func WithAccessLog(level slog.Level) Option {
	return func(c *config) { c.accessLog, c.accessLevel = true, level }
}

// WithoutAccessLog logs no access lines, undoing an earlier WithAccessLog.
// It is the default.
func WithoutAccessLog() Option { return func(c *config) { c.accessLog = false } }

// maxLoggedRooms bounds the rooms an access line names; past it the line
// counts the rest.
const maxLoggedRooms = 16

// callRecord is what a call did, for its access line. Its methods are safe
// for concurrent use, and on a nil record (no access log) do nothing.
type callRecord struct {
	subject string // a stream's set before the handler runs, read after it returned
	ran     bool   // a stream's handler ran: authentication let it through

	mu        sync.Mutex
	session   string
	sub       *broker.Subscriber // a Subscribe stream's, for the messages sent
	rooms     []string           // distinct, at most maxLoggedRooms
	roomBuf   [1]string          // rooms' first array: a unary call names one room
	moreRooms int
	published int // a PublishStream's publishes sequenced
	refused   int // and refused
}

// init points r's rooms at its own first array, so that a call naming one
// room allocates none for it.
func (r *callRecord) init() { r.rooms = r.roomBuf[:0] }

type recordKey struct{}

// recordContext is a context carrying a call record: the two in one
// allocation, where context.WithValue and the record would take two.
type recordContext struct {
	context.Context
	r callRecord
}

func (c *recordContext) Value(key any) any {
	if key == (recordKey{}) {
		return &c.r
	}
	return c.Context.Value(key)
}

// withRecord returns ctx carrying a new call record, and the record.
func withRecord(ctx context.Context) (context.Context, *callRecord) {
	rc := &recordContext{Context: ctx}
	rc.r.init()
	return rc, &rc.r
}

// recordOf returns the call record of the call ctx belongs to; nil without
// an access log.
func recordOf(ctx context.Context) *callRecord {
	r, _ := ctx.Value(recordKey{}).(*callRecord)
	return r
}

// room notes that the call used room.
func (r *callRecord) room(room string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addRoom(room)
}

// addRoom is room with r.mu held.
func (r *callRecord) addRoom(room string) {
	for _, x := range r.rooms {
		if x == room {
			return
		}
	}
	if len(r.rooms) < maxLoggedRooms {
		r.rooms = append(r.rooms, room)
	} else {
		r.moreRooms++
	}
}

// session notes a Subscribe stream's session and subscriber.
func (r *callRecord) stream(id string, sub *broker.Subscriber) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.session, r.sub = id, sub
}

// publish notes one publish of a PublishStream to room, sequenced or not.
func (r *callRecord) publish(room string, ok bool) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ok {
		r.published++
		r.addRoom(room)
	} else {
		r.refused++
	}
}

// fields appends the record's attributes for the access line of a call
// to method to f.
func (r *callRecord) fields(f []slog.Attr, method string) []slog.Attr {
	r.mu.Lock()
	defer r.mu.Unlock()
	f = append(f, slog.String("subject", r.subject))
	if r.session != "" {
		f = append(f, slog.String("session", r.session))
	}
	if len(r.rooms) > 0 {
		rooms := strings.Join(r.rooms, ",")
		if r.moreRooms > 0 {
			rooms += ",..."
		}
		f = append(f, slog.String("rooms", rooms))
		if r.moreRooms > 0 {
			f = append(f, slog.Int("more_rooms", r.moreRooms))
		}
	}
	if r.sub != nil {
		f = append(f, slog.Uint64("messages_sent", r.sub.Delivered()))
	}
	if strings.HasSuffix(method, "/PublishStream") {
		f = append(f, slog.Int("published", r.published), slog.Int("refused", r.refused))
	}
	return f
}

// unaryLine reports the level of the access line of a unary call to
// fullMethod that ended with err, and whether it is logged: not for calls
// the refusal log has, nor below the log's level.
func (s *Server) unaryLine(ctx context.Context, fullMethod string, err error) (slog.Level, bool) {
	if refusedByAccess(err) {
		return 0, false
	}
	lvl := unaryLevel(s.cfg.accessLevel, fullMethod, err)
	return lvl, s.cfg.log.Enabled(ctx, lvl)
}

// logUnaryLine logs the access line of a unary call at lvl.
func (s *Server) logUnaryLine(ctx context.Context, lvl slog.Level, fullMethod string, r *callRecord, began time.Time, err error) {
	s.logCall(ctx, lvl, fullMethod, interceptors.Unary, r, err, time.Since(began))
}

// logCall logs the access line of a call at lvl. Its attributes gather in
// an array of its own frame, not in the heap: slog copies them. It is not
// inlined, so that the array is on a stream's stack only while its line
// is logged, not beneath its handler for its whole life (see
// streamcalls.go).
//
//go:noinline
func (s *Server) logCall(ctx context.Context, lvl slog.Level, fullMethod string, typ interceptors.GRPCType, r *callRecord, err error, d time.Duration) {
	var buf [16]slog.Attr
	s.cfg.log.LogAttrs(ctx, lvl, "finished call", callFields(ctx, buf[:0], fullMethod, typ, r, err, d)...)
}

// refusedByAccess reports whether err refuses a call for its credential or
// grants: the refusal log's, not the access log's.
func refusedByAccess(err error) bool {
	c := status.Code(err)
	return c == codes.Unauthenticated || c == codes.PermissionDenied
}

// unaryLevel is the level of the access line of a unary call to fullMethod
// that returned err, for an access log at level: a successful Publish's is
// debug (or level, if lower), since a busy service makes thousands a
// second and their lines would cost more than the publishes (9% of a
// unary Publish's CPU at info, BenchmarkPublishServe); the metrics count
// them. Failures, and every other call, keep level.
func unaryLevel(level slog.Level, fullMethod string, err error) slog.Level {
	if err == nil && fullMethod == roomcastv1.BrokerService_Publish_FullMethodName {
		return min(level, slog.LevelDebug)
	}
	return level
}

// callFields appends to f the attributes of an access line: those of
// go-grpc-middleware's logging interceptor, and the record's. They are
// slog.Attrs, which hold strings and numbers without boxing them.
func callFields(ctx context.Context, f []slog.Attr, fullMethod string, typ interceptors.GRPCType, r *callRecord, err error, d time.Duration) []slog.Attr {
	service, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	f = append(f, slog.String(logging.ServiceFieldKey, service), slog.String(logging.MethodFieldKey, method), slog.String(logging.MethodTypeFieldKey, string(typ)), slog.String("peer.address", peerAddr(ctx)))
	f = r.fields(f, fullMethod)
	f = append(f, slog.String("grpc.code", status.Code(err).String()))
	if err != nil {
		f = append(f, slog.String("grpc.error", errorText(err)))
	}
	return append(f, slog.Duration("duration", d))
}

// statusErrorType is the type of grpc-go's status errors, whose Error is
// "rpc error: code = CODE desc = MESSAGE".
var statusErrorType = reflect.TypeOf(status.Error(codes.Unknown, ""))

// errorText is err.Error(), a grpc-go status error's built in one
// allocation rather than fmt's three: every stream's access line carries
// one (a cancelled stream's, a refused one's).
func errorText(err error) string {
	if reflect.TypeOf(err) == statusErrorType {
		st, _ := status.FromError(err)
		return "rpc error: code = " + st.Code().String() + " desc = " + st.Message()
	}
	return err.Error()
}

func streamType(info *grpc.StreamServerInfo) interceptors.GRPCType {
	switch {
	case info.IsClientStream && !info.IsServerStream:
		return interceptors.ClientStream
	case !info.IsClientStream:
		return interceptors.ServerStream
	}
	return interceptors.BidiStream
}

// logged reports whether calls to fullMethod get access lines: all but
// health checks.
func logged(fullMethod string) bool {
	return !strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/")
}

// recordedStream is a stream whose context carries more than grpc-go's:
// its call record, or its admission (see admitted).
type recordedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *recordedStream) Context() context.Context { return s.ctx }

// logCommand logs a Subscribe stream's command and its outcome at debug
// level (roomcast serve --log-level debug), for whoever follows a stream's
// life: what the access line sums up.
func (ss *session) logCommand(req *roomcastv1.SubscribeRequest, err error) {
	log := ss.srv.cfg.log
	ctx := ss.stream.Context()
	if !log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []any{"session", ss.id, "id", req.GetId()}
	switch cmd := req.GetCommand().(type) {
	case *roomcastv1.SubscribeRequest_Join:
		j := cmd.Join
		attrs = append(attrs, "command", "join", "room", j.GetRoom())
		if p := j.GetPosition(); p != nil {
			attrs = append(attrs, "position_offset", p.GetOffset(), "position_epoch", p.GetEpoch())
		}
		if j.GetPresence() || j.GetPresenceEvents() {
			attrs = append(attrs, "presence", j.GetPresence(), "presence_events", j.GetPresenceEvents())
		}
	case *roomcastv1.SubscribeRequest_Leave:
		attrs = append(attrs, "command", "leave", "room", cmd.Leave.GetRoom())
	case *roomcastv1.SubscribeRequest_Refresh:
		attrs = append(attrs, "command", "refresh") // never the token
	default:
		attrs = append(attrs, "command", "none")
	}
	switch {
	case errors.Is(err, errReplyLater):
		attrs = append(attrs, "code", "pending") // a join waiting on the engine
	default:
		attrs = append(attrs, "code", status.Code(err).String())
		if err != nil {
			attrs = append(attrs, "err", status.Convert(err).Message())
		}
	}
	log.Log(ctx, slog.LevelDebug, "stream command", attrs...)
}
