package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/reflect/protoreflect"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/gen/roomcast/v1/roomcastv1connect"
)

// The web handler serves BrokerService's Publish, Watch, History and
// Presence to browsers and other HTTP clients, with connect-go: the Connect
// protocol (binary and JSON), gRPC-Web and gRPC, over HTTP/1.1 and HTTP/2.
// Every call goes through the gRPC path's own pieces: the same
// authentication (authTap, fed the Authorization header as metadata), the
// same handlers and so the same grants, rate and size limits, the same
// status mapping (brokerStatus), turned into Connect errors with the same
// codes. A Watch is a session like a Subscribe stream's (webwatch.go), whose
// frames the codecs pass through or render as JSON (webcodec.go).

// WebOption configures WebHandler and ServeWeb.
type WebOption func(*webConfig)

type webConfig struct {
	origins []string
	tls     *tls.Config // ServeWeb's; nil: plaintext
}

// WithAllowedOrigins lets pages from these origins ("https://app.example",
// scheme and host, and port if not the scheme's; "*" for any) call the
// handler from a browser: CORS preflights from them are answered, and the
// responses carry the headers that let their scripts read them. The default
// is none: browsers then allow only pages of the handler's own origin.
// Calling it again adds to the list.
func WithAllowedOrigins(origins ...string) WebOption {
	return func(c *webConfig) { c.origins = append(c.origins, origins...) }
}

// WebHandler returns the http.Handler that serves BrokerService's Publish,
// Watch, History and Presence to web clients over the Connect protocol
// (application/proto and application/json), gRPC-Web and gRPC, at the
// procedures' usual paths ("/roomcast.v1.BrokerService/Watch"). It speaks
// whatever HTTP the server it is mounted on does: HTTP/1.1 always (gRPC
// needs HTTP/2), HTTP/2 with TLS or h2c; ServeWeb serves it with both.
//
// Calls authenticate with "Authorization: Bearer <token>", as gRPC calls
// do with metadata, and are held to the server's grants and limits. A call
// that arrives once Shutdown or Close has begun fails with UNAVAILABLE;
// Watch calls end with UNAVAILABLE on shutdown, as Subscribe streams do.
// The handler is safe for concurrent use; handlers may be made any number
// of times.
func (s *Server) WebHandler(opts ...WebOption) (http.Handler, error) {
	var cfg webConfig
	for _, o := range opts {
		o(&cfg)
	}
	cors, err := newCORS(cfg.origins)
	if err != nil {
		return nil, err
	}
	lim := s.cfg.requestLimits()
	methods := roomcastv1.File_roomcast_v1_broker_proto.Services().ByName("BrokerService").Methods()
	common := func(method string, maxBytes int) []connect.HandlerOption {
		return []connect.HandlerOption{
			connect.WithSchema(methods.ByName(protoreflect.Name(method))),
			connect.WithReadMaxBytes(maxBytes),
			connect.WithCodec(webProtoCodec{limits: lim}),
			connect.WithCodec(webJSONCodec{name: "json", cache: s.jsonFragments}),
			connect.WithCodec(webJSONCodec{name: "json; charset=utf-8", cache: s.jsonFragments}),
			// Compressing is per call, so per subscriber: the shared
			// frames are sent as they are.
			connect.WithCompression("gzip", nil, nil),
			connect.WithInterceptors(webInterceptor{s}),
			connect.WithRecover(s.webRecover),
		}
	}
	web := &webService{s: s}
	mux := http.NewServeMux()
	mux.Handle(roomcastv1connect.BrokerServicePublishProcedure,
		connect.NewUnaryHandler(roomcastv1connect.BrokerServicePublishProcedure, web.publish, common("Publish", lim.publish)...))
	mux.Handle(roomcastv1connect.BrokerServiceHistoryProcedure,
		connect.NewUnaryHandler(roomcastv1connect.BrokerServiceHistoryProcedure, web.history, common("History", maxQueryBytes)...))
	mux.Handle(roomcastv1connect.BrokerServicePresenceProcedure,
		connect.NewUnaryHandler(roomcastv1connect.BrokerServicePresenceProcedure, web.presence, common("Presence", maxQueryBytes)...))
	mux.Handle(roomcastv1connect.BrokerServiceWatchProcedure,
		connect.NewServerStreamHandler(roomcastv1connect.BrokerServiceWatchProcedure, web.watch, common("Watch", lim.watch)...))
	return cors.Handler(webContext(s.webAuthFirst(mux, connect.NewErrorWriter()))), nil
}

// webProcedures are the paths WebHandler serves. A request for any other,
// or one of them that is no RPC connect-go serves (an unsupported content
// type), is refused as an unauthenticated call is, toward its connection's
// and address's refused calls: a credential's loop of Subscribe calls, which
// the web listener does not serve, cost the server 5 s of CPU in 5 s as
// plain 404s (attack (d) on the web listener).
var webProcedures = map[string]bool{
	roomcastv1connect.BrokerServicePublishProcedure:  true,
	roomcastv1connect.BrokerServiceHistoryProcedure:  true,
	roomcastv1connect.BrokerServicePresenceProcedure: true,
	roomcastv1connect.BrokerServiceWatchProcedure:    true,
}

// webAuthedKey marks a call's context as authenticated by webAuthFirst.
type webAuthedKey struct{}

// webAuthFirst refuses a request for a path it does not serve, and
// authenticates each RPC before its request is read: connect-go
// reads and decodes a unary call's request before its interceptors run, so
// a refused caller could otherwise make the server read and decode a body
// of up to the method's limit (issue #13 (c), 3.7 GB read and 7 s of CPU in
// 5 s on the web listener). A refusal is written in the call's own
// protocol, with the body unread; a request to a served path that is no RPC
// connect-go serves is counted as a refused call and passes on, for
// connect-go to refuse (415).
func (s *Server) webAuthFirst(next http.Handler, errs *connect.ErrorWriter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !webProcedures[r.URL.Path] {
			s.refusedInTap(r.Context(), abusive)
			if errs.IsSupported(r) {
				errs.Write(w, r, connect.NewError(connect.CodeUnimplemented, fmt.Errorf("%s is not served on this port", r.URL.Path)))
			} else {
				http.NotFound(w, r)
			}
			return
		}
		if !errs.IsSupported(r) { // connect-go refuses it (415), as a call refused before it runs
			s.refusedInTap(r.Context(), abusive)
			next.ServeHTTP(w, r)
			return
		}
		if s.tap == nil {
			next.ServeHTTP(w, r)
			return
		}
		ctx, err := s.webAuth(r.Context(), r.URL.Path, r.Header)
		if err != nil {
			errs.Write(w, r, webError(err))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, webAuthedKey{}, true)))
	})
}

// webService adapts the server's handlers to connect-go's.
type webService struct{ s *Server }

func (w *webService) publish(ctx context.Context, req *connect.Request[roomcastv1.PublishRequest]) (*connect.Response[roomcastv1.PublishResponse], error) {
	resp, err := w.s.Publish(ctx, req.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

func (w *webService) history(ctx context.Context, req *connect.Request[roomcastv1.HistoryRequest]) (*connect.Response[roomcastv1.HistoryResponse], error) {
	resp, err := w.s.History(ctx, req.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

func (w *webService) presence(ctx context.Context, req *connect.Request[roomcastv1.PresenceRequest]) (*connect.Response[roomcastv1.PresenceResponse], error) {
	resp, err := w.s.Presence(ctx, req.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// webWriterKey carries a call's http.ResponseWriter in its context, for
// webStream to cut a blocked Send short (see webStream.stop).
type webWriterKey struct{}

// webContext gives each call's context what the gRPC path finds in its
// own: the peer (the client's and the server's addresses), by which
// anonymous callers are told apart and connOf picks the connection's writer,
// and the connection guard finds the connection. Keyed by the connection's
// addresses, every call of one HTTP connection shares its writer, as the
// streams of one gRPC connection do: an HTTP/1.1 connection carries one
// call at a time, an HTTP/2 one many.
func webContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		addr, ok := ctx.Value(webConnKey{}).(net.Addr)
		if !ok {
			addr = httpAddr(r.RemoteAddr)
		}
		p := &peer.Peer{Addr: addr}
		if la, ok := ctx.Value(http.LocalAddrContextKey).(net.Addr); ok {
			p.LocalAddr = la
		}
		ctx = context.WithValue(peer.NewContext(ctx, p), webWriterKey{}, w)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// webConnKey keys the remote address of a web request's connection.
type webConnKey struct{}

// webConnContext is the web server's http.Server.ConnContext: each of a
// connection's requests has its one remote address, the connection's,
// rather than one parsed from its RemoteAddr, so that the anonymous
// callers' cache finds the connection's identity by it (callers.go), as
// for a gRPC connection, rather than adding an address a request.
func webConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(context.WithValue(ctx, webConnKey{}, c.RemoteAddr()), webConnValueKey{}, c)
}

// webConnValueKey keys a web request's connection itself, for the tap to
// hold a watched connection's reads after a refusal (see holdReads).
type webConnValueKey struct{}

// httpAddr is a Request.RemoteAddr as the net.Addr a connection would give.
func httpAddr(s string) net.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return stringAddr(s)
}

// stringAddr is an address that is not TCP's, such as a Unix socket's.
type stringAddr string

func (a stringAddr) Network() string { return "unknown" }
func (a stringAddr) String() string  { return string(a) }

// webInterceptor authenticates each call that webAuthFirst let through
// unauthenticated (none, as WebHandler mounts them), counts it
// as in flight for Shutdown, and turns the handlers' gRPC statuses into
// Connect errors.
type webInterceptor struct{ s *Server }

func (i webInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if !i.s.enterWeb() {
			return nil, webError(errShuttingDown)
		}
		defer i.s.webCalls.Done()
		ctx, err := i.s.webAuthOnce(ctx, req.Spec().Procedure, req.Header())
		if err != nil {
			return nil, webError(err)
		}
		resp, err := next(ctx, req)
		return resp, webError(err)
	}
}

func (i webInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i webInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if !i.s.enterWeb() {
			return webError(errShuttingDown)
		}
		defer i.s.webCalls.Done()
		ctx, err := i.s.webAuthOnce(ctx, conn.Spec().Procedure, conn.RequestHeader())
		if err != nil {
			return webError(err)
		}
		return webError(next(ctx, conn))
	}
}

var errShuttingDown = status.Error(codes.Unavailable, "server is shutting down; reconnect to another instance")

// enterWeb counts a web call in flight, unless the server is stopping:
// Shutdown and Close wait for the calls counted. Adding under mu, only
// before the drain, orders every Add before the Wait that follows it.
func (s *Server) enterWeb() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.webCalls.Add(1)
	return true
}

// webAuth authenticates a web call of procedure from its headers with the
// gRPC path's authTap, which reads the authorization metadata, logs a
// refusal and tells the connection guard; the returned context carries the
// identity. Without an authenticator every call is anonymous, and the tap
// applies only the limits of its client address (see limitTap).
func (s *Server) webAuth(ctx context.Context, procedure string, h http.Header) (context.Context, error) {
	if s.tap == nil {
		return ctx, nil
	}
	md := metadata.MD{}
	if v := h.Values("Authorization"); len(v) > 0 {
		md["authorization"] = v
	}
	return s.tap(metadata.NewIncomingContext(ctx, md), &tap.Info{FullMethodName: procedure, Header: md})
}

// webAuthOnce is webAuth for a call that webAuthFirst has not
// authenticated already.
func (s *Server) webAuthOnce(ctx context.Context, procedure string, h http.Header) (context.Context, error) {
	if ctx.Value(webAuthedKey{}) != nil {
		return ctx, nil
	}
	return s.webAuth(ctx, procedure, h)
}

// webError is err, a gRPC status, as a Connect error with the same code,
// message and details.
func webError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	st := status.Convert(err)
	out := connect.NewError(connect.Code(st.Code()), errors.New(st.Message()))
	for _, d := range st.Proto().GetDetails() {
		if detail, err := connect.NewErrorDetail(d); err == nil {
			out.AddDetail(detail)
		}
	}
	return out
}

// webRecover is the web handler's recovery: a panic in a call's handler
// ends that call with INTERNAL, logged and counted as on the gRPC path.
func (s *Server) webRecover(_ context.Context, spec connect.Spec, _ http.Header, p any) error {
	s.recovered(p, spec.Procedure, "")
	return connect.NewError(connect.CodeInternal, fmt.Errorf("the server failed this call; it has been logged"))
}
