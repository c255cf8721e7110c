package server

import (
	"context"
	"path"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// grpc-go gives each call a context with its grpc-timeout's deadline, and
// its timer, before it calls the tap; when the tap refuses the call, grpc-go
// writes the refusal and never cancels that context (grpc-go v1.85.0,
// http2Server.operateHeaders). Its parent, the connection's, derives from
// context.Background(), so the context and its timer stay in the heap until
// the deadline, however long (a grpc-timeout may be 99999999H) and even
// after the connection closes: 274 bytes (three objects) of memory a
// client chooses how long to hold, for each call it has refused (issue
// #13). A call the tap lets through is cancelled as its stream ends. So the
// server counts the timers its tap's refusals leave (heldTimers), and a
// call the tap refuses whose timer would take the count past its budget, or
// whose deadline is 16 seconds away or more, is let through with its
// refusal, which the server's own code gives it before anything else runs
// for it (deferLongRefusals). A refusal in the tap is the cheaper one: 13
// to 16 µs of server CPU against 18 to 21 µs deferred (medians of three
// runs of BenchmarkRefusedCall, the command in its comment), and a
// deferred call's request may arrive, up to its stream's receive window,
// and be buffered before its refusal: under attack (c) of issue #13, 1 MB
// unauthenticated publishes with 5-second deadlines, deferring them all
// made the server collect garbage 39 to 43 times in 5 s rather than 5.
//
// The timers a client's refusals leave fire at the deadlines it chose,
// which may all be one instant: under attack (d) of issue #13 the
// attacker's refused streams all had its own deadline, the attack's end,
// and 14,000 timers fired together, each starting a goroutine of its own,
// which went ahead of every other goroutine in the run queues: a
// bystander's delivery 41 to 76 ms late. So the timers are also kept
// within a budget per whole second of deadline (defaultHeldPerSecond; up to
// twice that may fire within a moment across a second's turn), past which
// a refusal is deferred: its context is cancelled as its stream ends, at
// once. A deferred call's request is buffered, up to its stream's window,
// until it is refused, and a unary call's client sends its request at
// once, where a stream's rarely does: with unary calls within the same
// budget as streams, attack (c) made the server collect garbage 7 and 8
// times rather than 4 and 5 (two runs). So unary calls have
// unaryPerSecondFactor times the budget of a second.

// Bounds of the timers the tap's refusals may leave in the heap.
const (
	// defaultHeldTimers is how many at once: about 27 MB.
	defaultHeldTimers = 100_000
	// heldWindow is how far away, in seconds, a refused call's deadline
	// may be for its timer to be counted; a further one is deferred. The
	// budget is the server's, all clients' together: keeping the window
	// short makes filling it take many refusals a second (100,000 in 16 s,
	// over 6,000 a second, about 60 connections at the pace the tap's
	// pauses allow), while the deadlines clients usually give, seconds,
	// keep the cheaper refusal.
	heldWindow = 16
	// defaultHeldPerSecond is how many of them may fire within one second:
	// in the execution trace of a program that did nothing else, on 2
	// cores other builds loaded, 1,000 timers firing at one instant kept
	// another goroutine waiting to run for about 2 ms (14,000 for 77 ms).
	defaultHeldPerSecond = 1000
	// unaryPerSecondFactor is how many times defaultHeldPerSecond (or the
	// budget withHeldTimers gives) unary calls may leave in one second.
	unaryPerSecondFactor = 4
)

// heldTimers counts the calls refused in the tap whose deadline timers
// grpc-go may still hold, by the second their deadline passes, in seconds
// since start: times with monotonic readings, as grpc-go's timers are, so
// that a step of the wall clock changes nothing. It is safe for concurrent
// use.
type heldTimers struct {
	max       int       // the budget
	perSecond int       // the budget of each second of deadline, of streams' timers; unary calls' is unaryPerSecondFactor times it
	start     time.Time // of the server

	mu   sync.Mutex
	n    int             // held, as of the last take
	secs [heldWindow]int // held, by the second after their deadline, modulo heldWindow
	from int64           // the first second secs may count; earlier ones have passed and are empty
}

// take reports whether a call refused at now with deadline may be refused
// in the tap, and if so counts its timer until the deadline has passed.
// The timers of its deadline's second must be within perSecond as well, or
// unaryPerSecondFactor times it for a unary call.
func (h *heldTimers) take(now, deadline time.Time, unary bool) bool {
	nowSec := int64(now.Sub(h.start) / time.Second)
	end := int64(deadline.Sub(h.start)/time.Second) + 1 // its timer has fired by the second after its deadline
	if end-nowSec >= heldWindow {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	nowSec = max(nowSec, h.from)     // read before the lock, it may be behind another caller's
	if nowSec-h.from >= heldWindow { // every second counted has passed
		h.n, h.secs, h.from = 0, [heldWindow]int{}, nowSec
	}
	for ; h.from < nowSec; h.from++ {
		i := h.from % heldWindow
		h.n -= h.secs[i]
		h.secs[i] = 0
	}
	slot := max(end, nowSec) % heldWindow // a deadline passed counts in this second
	perSecond := h.perSecond
	if unary {
		perSecond *= unaryPerSecondFactor
	}
	if h.n >= h.max || h.secs[slot] >= perSecond {
		return false
	}
	h.secs[slot]++
	h.n++
	return true
}

// deferredRefusal is the context key of a call's refusal deferred by
// deferLongRefusals.
type deferredRefusal struct{}

// deferLongRefusals returns the gRPC path's tap: t, except that a call t
// refuses whose deadline timer the tap may not leave (see heldTimers) is
// let through with the refusal in its context, for refuseDeferred to
// answer.
// Every refusal of t goes through it, whichever check made it. Only the
// gRPC path's tap needs it: a web call's context is its HTTP request's,
// which ends with it.
func (s *Server) deferLongRefusals(t tap.ServerInHandle) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		ctx2, err := t(ctx, info)
		if err == nil {
			return ctx2, nil
		}
		if !strings.HasPrefix(info.FullMethodName, "/") {
			return nil, err // grpc-go would answer a deferred one "malformed method name", not with err
		}
		if d, ok := ctx.Deadline(); !ok || s.held.take(time.Now(), d, s.unary[info.FullMethodName]) {
			return nil, err
		}
		s.deferred.Add(1)
		return context.WithValue(ctx, deferredRefusal{}, err), nil
	}
}

// unaryMethods returns the full names ("/service/method") of the unary
// methods of services.
func unaryMethods(services map[string]grpc.ServiceInfo) map[string]bool {
	unary := make(map[string]bool)
	for name, info := range services {
		for _, m := range info.Methods {
			if !m.IsClientStream && !m.IsServerStream {
				unary["/"+name+"/"+m.Name] = true
			}
		}
	}
	return unary
}

// refusalOf is the refusal the tap deferred for ctx's call, or nil.
func refusalOf(ctx context.Context) error {
	err, _ := ctx.Value(deferredRefusal{}).(error)
	return err
}

// refuseDeferred makes each unary handler of desc, a copy of a service
// description, answer a call whose refusal the tap deferred with that
// refusal, before the handler reads and decodes its request (a generated
// handler decodes before it calls the interceptors, which then see no
// such call). Streams are refused by refuseDeferredStreams.
func refuseDeferred(desc *grpc.ServiceDesc) {
	desc.Methods = append([]grpc.MethodDesc(nil), desc.Methods...)
	for i := range desc.Methods {
		handler := desc.Methods[i].Handler
		desc.Methods[i].Handler = func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			if mayBeDeferred(srv) {
				if err := refusalOf(ctx); err != nil {
					return nil, err
				}
			}
			return handler(srv, ctx, dec, interceptor)
		}
	}
}

// mayBeDeferred reports whether a call to srv may carry a deferred
// refusal: unless srv is a *Server whose tap has deferred none yet, which
// spares every call of a server whose tap defers nothing a search of its
// context, a dozen values deep, for one.
func mayBeDeferred(srv any) bool {
	s, ok := srv.(*Server)
	return !ok || s.deferred.Load() > 0
}

// refuseDeferredStreams returns first, the first of the server's stream
// interceptors, answering a stream whose refusal the tap deferred with that
// refusal instead: before any interceptor counts, logs or admits it, and
// before its handler reads a request. Any other call to a method the server
// does not serve goes to handler, the grpc.UnknownServiceHandler in effect
// (unknownMethod, unless WithGRPCOptions gave another), straight away, past
// the interceptors, as grpc-go would answer it without one: a client must
// not make up the methods the metrics count.
func (s *Server) refuseDeferredStreams(first grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := refusalOf(ss.Context()); err != nil {
			return err
		}
		if srv == nil { // grpc-go has no service for the call
			return handler(srv, ss)
		}
		return first(srv, ss, info, handler)
	}
}

// unknownMethod is the server's grpc.UnknownServiceHandler, so that a call
// to a method it does not serve whose refusal the tap deferred comes to
// refuseDeferredStreams (as it does with any handler WithGRPCOptions gives
// instead); other such calls it answers UNIMPLEMENTED, as grpc-go would
// without it.
func (s *Server) unknownMethod(_ any, ss grpc.ServerStream) error {
	full, _ := grpc.MethodFromServerStream(ss)
	service, method := path.Split(strings.TrimPrefix(full, "/"))
	service = strings.TrimSuffix(service, "/")
	if _, ok := s.services[service]; !ok {
		return status.Errorf(codes.Unimplemented, "unknown service %v", service)
	}
	return status.Errorf(codes.Unimplemented, "unknown method %v for service %v", method, service)
}
