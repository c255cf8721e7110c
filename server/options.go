package server

import (
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Defaults for the options of New. Each option is named after the flag of
// "roomcast serve" that sets it, where there is one: WithMaxStreams and
// DefaultMaxStreams for --max-streams, and so on.
const (
	DefaultMaxMessageBytes         = 1 << 20
	DefaultMaxRoomsPerSession      = 256
	DefaultMaxBatchBytes           = 256 << 10
	DefaultMaxStreamsPerConnection = 1000
	DefaultKeepaliveTime           = 30 * time.Second
	DefaultWriteTimeout            = 10 * time.Second
	DefaultMaxStreams              = 100_000
	DefaultCommandRate             = 1000
	DefaultCommandBurst            = 1000
	DefaultAuthFailureLogRate      = 10
)

// Option configures a Server.
type Option func(*config)

type config struct {
	broker            *broker.Hub
	brokerOpts        []broker.Option
	maxMessageBytes   int
	maxRooms          int
	maxBatchBytes     int
	maxStreamsPerConn uint32
	log               *slog.Logger
	registry          prometheus.Registerer
	grpcOpts          []grpc.ServerOption
	keepaliveTime     time.Duration
	writeTimeout      time.Duration
	authn             *auth.Authenticator
	publishRate       float64
	publishBurst      int
	commandRate       float64
	commandBurst      int
	maxTotalStreams   int
	authLogRate       float64
	creds             credentials.TransportCredentials
	resetRate         float64 // see resets.go
	resetBurst        int
	accessLog         bool                 // see accesslog.go
	accessLevel       slog.Level           // of access lines
	tracer            trace.TracerProvider // see tracing.go; nil: no stats handler
	limits
	abusePenalty time.Duration    // see penalty.go
	penaltyClock func() time.Time // tests only: the penalties' clock; nil: time.Now

	maxWriteHold  time.Duration                           // see pacing.go
	writerIdle    time.Duration                           // writerIdlePeriod; tests shorten it
	handshake     time.Duration                           // handshakeTimeout; tests shorten it
	clock         func() int64                            // tests only: the server's clock in ns (Server.now); nil: monotonic time
	holdHook      func(d time.Duration)                   // tests only: called as a writer begins to hold before a pass
	turnHook      func(sessionID string)                  // tests only: called as each turn begins
	publishHook   func(req *roomcastv1.PublishRequest)    // tests only: called as each Publish begins
	decodeHook    func(msg any)                           // tests only: called as the codec decodes a checked request
	tapHook       func(method string)                     // tests only: called as the tap begins each call
	readPauseHook func(sessionID string, d time.Duration) // tests only: called as a reader pauses after a refused command
	tapPauseHook  func(d time.Duration)                   // tests only: called as the tap pauses a connection after a refused call

	publishPauseHook     func(d time.Duration) // tests only: called as a PublishStream's reader pauses after a refused publish
	crowdedAllowance     int                   // tests only: crowded refusals a connection may have within a second unpaused; 0: freeCrowdedRefusals
	credCrowdedAllowance int                   // tests only: the same of a credential's rate; 0: freeCredentialCrowdedRefusals
	heldTimers           int                   // tests only: the deadline timers the tap's refusals may leave; 0: defaultHeldTimers
	heldPerSecond        int                   // tests only: of them, those whose deadlines fall in one second; 0: defaultHeldPerSecond
	// Tests only: the bytes of crowded refusals' bodies a connection, and
	// a credential, may have within a second unpaused; 0: freeCrowdedBodies
	// and freeCredentialCrowdedBodies.
	crowdedBodyAllowance, credCrowdedBodyAllowance int
}

// WithBroker makes the server use b, which it then owns and closes. The
// default is a new in-memory broker made with the options of WithBrokerOptions.
func WithBroker(b *broker.Hub) Option { return func(c *config) { c.broker = b } }

// WithBrokerOptions passes opts to the in-memory broker the server makes when
// WithBroker is not given. The default is none: the broker's own defaults.
func WithBrokerOptions(opts ...broker.Option) Option {
	return func(c *config) { c.brokerOpts = append(c.brokerOpts, opts...) }
}

// WithMaxMessageBytes limits a published message: payload, content type and
// headers together. Larger ones are refused with RESOURCE_EXHAUSTED. The
// default is DefaultMaxMessageBytes (1 MiB); it must not exceed the broker's
// backlog in bytes, or every subscriber would lag on one message.
func WithMaxMessageBytes(n int) Option { return func(c *config) { c.maxMessageBytes = n } }

// WithMaxRoomsPerSession limits the rooms one Subscribe stream may be in; a
// join past it gets a RESOURCE_EXHAUSTED reply. The default is
// DefaultMaxRoomsPerSession (256).
func WithMaxRoomsPerSession(n int) Option { return func(c *config) { c.maxRooms = n } }

// WithMaxBatchBytes bounds the messages one streamed response carries (a
// single larger message is still sent alone). The default is
// DefaultMaxBatchBytes (256 KiB), far below the 4 MiB a stock gRPC client
// accepts.
func WithMaxBatchBytes(n int) Option { return func(c *config) { c.maxBatchBytes = n } }

// WithMaxStreams limits the Subscribe streams open on the server at once; a
// stream past it ends at once with RESOURCE_EXHAUSTED. The default is
// DefaultMaxStreams (100,000).
func WithMaxStreams(n int) Option { return func(c *config) { c.maxTotalStreams = n } }

// WithMaxStreamsPerConnection limits the calls one client connection may
// have in flight at once (HTTP/2 streams: Subscribe streams and unary calls
// alike); further calls wait for one to end. The default is
// DefaultMaxStreamsPerConnection (1000).
func WithMaxStreamsPerConnection(n uint32) Option {
	return func(c *config) { c.maxStreamsPerConn = n }
}

// WithLogger sets the logger. The default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithMetrics registers the server's Prometheus metrics (gRPC calls by
// method and code, and the broker's counters) with reg. The default is no
// metrics.
func WithMetrics(reg prometheus.Registerer) Option { return func(c *config) { c.registry = reg } }

// WithGRPCOptions adds options to the underlying grpc.Server, after the
// server's own, which they override. The default is none. Give transport
// credentials with WithTransportCredentials instead of grpc.Creds here:
// credentials given here replace the server's own, and their connections
// escape the limit of WithStreamResetRate. Interceptors given here see the
// replies of a unary Publish, of History and of Presence already encoded,
// not as *roomcastv1.PublishResponse, *roomcastv1.HistoryResponse or
// *roomcastv1.PresenceResponse (the server encodes them once, itself). A grpc.StreamInterceptor given here runs
// before the server's own interceptors, so it also sees the streams the
// server refuses after the tap (a refused call with a deadline more than a
// second away, see docs/security.md), which the server's interceptors and
// those of grpc.ChainStreamInterceptor never see. A stream interceptor or
// stats handler given here must not keep a Subscribe stream's responses
// past SendMsg: the server reuses their messages once they are sent.
func WithGRPCOptions(opts ...grpc.ServerOption) Option {
	return func(c *config) { c.grpcOpts = append(c.grpcOpts, opts...) }
}

// WithTransportCredentials serves connections secured by creds, such as
// credentials.NewTLS. The default (and what nil means) is plaintext.
func WithTransportCredentials(creds credentials.TransportCredentials) Option {
	return func(c *config) { c.creds = creds }
}

// WithKeepaliveTime sets how long a connection may be idle before the server
// pings it to check that the client is still there; a client that does not
// answer within a third of that is disconnected. The default is
// DefaultKeepaliveTime (30 seconds).
func WithKeepaliveTime(d time.Duration) Option { return func(c *config) { c.keepaliveTime = d } }

// WithWriteTimeout bounds how long one write to a Subscribe stream may wait
// for the client to take earlier ones (gRPC flow control blocks a write once
// about 64 KiB of the stream are unread). A client that stalls longer is cut
// off as a slow consumer with RESOURCE_EXHAUSTED, which names the last offset
// sent in each room. The default is DefaultWriteTimeout (10 seconds).
func WithWriteTimeout(d time.Duration) Option { return func(c *config) { c.writeTimeout = d } }

// WithAuthenticator makes every call but health and reflection carry a
// credential that a verifies (UNAUTHENTICATED otherwise), and checks each
// room against the credential's grants (PERMISSION_DENIED otherwise). A
// Subscribe stream ends with UNAUTHENTICATED when its credential expires,
// unless the client sent a refresh command. The default is none: every
// caller may do everything, which is meant for a server on loopback.
func WithAuthenticator(a *auth.Authenticator) Option { return func(c *config) { c.authn = a } }

// WithPublishRate limits each credential's publishes to perSecond, with
// bursts of burst (a token bucket); past it, Publish fails with
// RESOURCE_EXHAUSTED and a RetryInfo detail. Anonymous callers (without an
// authenticator, or admitted by auth.WithAnonymous) count as one credential
// per client address, an IPv6 one by its /64. The default is 0: no limit.
func WithPublishRate(perSecond float64, burst int) Option {
	return func(c *config) { c.publishRate, c.publishBurst = perSecond, burst }
}

// WithCommandRate limits each Subscribe stream's commands to perSecond, with
// bursts of burst; a command past it gets a RESOURCE_EXHAUSTED reply. A
// credential's streams together are limited by WithCredentialCommandRate.
// The default is DefaultCommandRate (1000) per second with bursts of
// DefaultCommandBurst (1000); 0 means no limit.
func WithCommandRate(perSecond float64, burst int) Option {
	return func(c *config) { c.commandRate, c.commandBurst = perSecond, burst }
}

// WithAuthFailureLogRate logs calls and commands refused with
// UNAUTHENTICATED or PERMISSION_DENIED (a credential missing, bad, expired
// or revoked; a room, session or refresh outside the caller's rights), and
// requests refused before any interceptor saw them (see
// roomcast_requests_refused_total), each as a warning with the client's
// address, at most perSecond lines a second:
// past it, lines are left out and the next one logged counts them
// ("suppressed"). The default is DefaultAuthFailureLogRate (10) lines a
// second; 0 logs none.
func WithAuthFailureLogRate(perSecond float64) Option {
	return func(c *config) { c.authLogRate = perSecond }
}

func newConfig(opts []Option) (config, error) {
	c := config{
		maxMessageBytes:   DefaultMaxMessageBytes,
		maxRooms:          DefaultMaxRoomsPerSession,
		maxBatchBytes:     DefaultMaxBatchBytes,
		maxStreamsPerConn: DefaultMaxStreamsPerConnection,
		log:               slog.Default(),
		keepaliveTime:     DefaultKeepaliveTime,
		writeTimeout:      DefaultWriteTimeout,
		commandRate:       DefaultCommandRate,
		commandBurst:      DefaultCommandBurst,
		maxTotalStreams:   DefaultMaxStreams,
		authLogRate:       DefaultAuthFailureLogRate,
		resetRate:         DefaultStreamResetRate,
		resetBurst:        DefaultStreamResetBurst,
		accessLevel:       DefaultAccessLogLevel,
		limits:            defaultLimits(),
		writerIdle:        writerIdlePeriod,
		handshake:         handshakeTimeout,
		maxWriteHold:      DefaultMaxWriteHold,
		abusePenalty:      DefaultAbusePenalty,
	}
	for _, o := range opts {
		o(&c)
	}
	if err := c.limits.validate(); err != nil {
		return c, err
	}
	switch {
	case c.maxMessageBytes < 1:
		return c, fmt.Errorf("server: max message size must be positive, got %d", c.maxMessageBytes)
	case c.maxRooms < 1:
		return c, fmt.Errorf("server: rooms per session must be positive, got %d", c.maxRooms)
	case c.maxBatchBytes < 1:
		return c, fmt.Errorf("server: batch size must be positive, got %d", c.maxBatchBytes)
	case c.maxStreamsPerConn < 1:
		return c, fmt.Errorf("server: streams per connection must be positive, got %d", c.maxStreamsPerConn)
	case c.maxTotalStreams < 1:
		return c, fmt.Errorf("server: total streams must be positive, got %d", c.maxTotalStreams)
	case c.publishRate < 0 || (c.publishRate > 0 && c.publishBurst < 1):
		return c, fmt.Errorf("server: publish rate needs a positive burst, got %v/s burst %d", c.publishRate, c.publishBurst)
	case c.commandRate < 0 || (c.commandRate > 0 && c.commandBurst < 1):
		return c, fmt.Errorf("server: command rate needs a positive burst, got %v/s burst %d", c.commandRate, c.commandBurst)
	case c.resetRate < 0 || (c.resetRate > 0 && c.resetBurst < 1):
		return c, fmt.Errorf("server: stream reset rate needs a positive burst, got %v/s burst %d", c.resetRate, c.resetBurst)
	case c.writeTimeout <= 0:
		return c, fmt.Errorf("server: write timeout must be positive, got %v", c.writeTimeout)
	case c.authLogRate < 0 || math.IsInf(c.authLogRate, 0) || math.IsNaN(c.authLogRate):
		return c, fmt.Errorf("server: authentication failure log rate must be 0 or a positive number of lines a second, got %v", c.authLogRate)
	case c.maxUnfinished < 0 || c.maxUnfinished > 0 && (c.maxUnfinishedPerAddr < int64(c.maxMessageBytes+messageOverhead) || c.maxUnfinished < c.maxUnfinishedPerAddr):
		return c, fmt.Errorf("server: max unfinished bytes must be 0 (off), or at least the bytes per address, which must be at least a request's receive limit (%d); got %d and %d per address",
			c.maxMessageBytes+messageOverhead, c.maxUnfinished, c.maxUnfinishedPerAddr)
	case c.requestFrameRate < 0:
		return c, fmt.Errorf("server: request frame rate must be 0 (off) or a positive number of frames a second, got %d", c.requestFrameRate)
	case c.unfinishedReadRate < 0:
		return c, fmt.Errorf("server: unfinished read rate must be 0 (off) or a positive number of bytes a second, got %d", c.unfinishedReadRate)
	case c.abusePenalty < 0:
		return c, fmt.Errorf("server: abuse penalty must be 0 (off) or positive, got %v", c.abusePenalty)
	case c.maxWriteHold < 0:
		return c, fmt.Errorf("server: max write hold must be 0 (off) or positive, got %v", c.maxWriteHold)
	case c.keepaliveTime <= 0:
		return c, fmt.Errorf("server: keepalive time must be positive, got %v", c.keepaliveTime)
	}
	return c, nil
}

// withTurnHook makes every session's turn call f with the session's id as
// it begins, on the writer serving it: tests make a turn panic, or wait,
// with it. Only tests set it, through export_test.go.
func withTurnHook(f func(sessionID string)) Option { return func(c *config) { c.turnHook = f } }

// withReadPauseHook makes a stream's reader call f with the session's id
// and the pause as it begins to pause after a refused command (see
// cmdrate.go); the pause begins when f returns. Only tests set it, through
// export_test.go.
func withReadPauseHook(f func(sessionID string, d time.Duration)) Option {
	return func(c *config) { c.readPauseHook = f }
}

// withTapPauseHook makes the tap call f with the pause as it begins to
// pause a connection after a call it refused (see refusedInTap). Only
// tests set it, through export_test.go.
func withTapPauseHook(f func(d time.Duration)) Option { return func(c *config) { c.tapPauseHook = f } }

// withCrowdedAllowance sets how many crowded refusals (see crowdedRefusal)
// a connection may have within a second before the tap pauses it
// (freeCrowdedRefusals by default), and how many of one rate a credential
// may have over all its connections (freeCredentialCrowdedRefusals by
// default, and for a publish rate its crowdedAllowance if that is fewer), so that a test need not make thousands within a second on a
// loaded machine. 0 keeps the default. Only tests set it, through
// export_test.go.
func withCrowdedAllowance(perConn, perCredential int) Option {
	return func(c *config) { c.crowdedAllowance, c.credCrowdedAllowance = perConn, perCredential }
}

// withCrowdedBodyAllowance sets how many bytes of crowded refusals' bodies
// (see crowdedBodyCall) a connection may have within a second before the
// tap pauses it (freeCrowdedBodies by default), and a credential over all
// its connections (freeCredentialCrowdedBodies by default). 0 keeps the
// default. Only tests set it, through export_test.go.
func withCrowdedBodyAllowance(perConn, perCredential int) Option {
	return func(c *config) { c.crowdedBodyAllowance, c.credCrowdedBodyAllowance = perConn, perCredential }
}

// withHeldTimers sets how many deadline timers the tap's refusals may leave
// in the heap at once (see heldTimers), defaultHeldTimers by default, and
// how many of those whose deadlines fall in one second, perSecond,
// defaultHeldPerSecond by default (0 keeps either default), so that a
// test need not refuse a hundred thousand calls. Only tests set it,
// through export_test.go.
func withHeldTimers(n, perSecond int) Option {
	return func(c *config) { c.heldTimers, c.heldPerSecond = n, perSecond }
}

// withPublishPauseHook makes a PublishStream's reader call f with the
// pause as it begins to pause after a request answered with a refusal (see
// publishrefusal.go). Only tests set it, through export_test.go.
func withPublishPauseHook(f func(d time.Duration)) Option {
	return func(c *config) { c.publishPauseHook = f }
}

// withHandshakeTimeout sets how long a new connection has to finish its
// handshake, handshakeTimeout by default. Only tests set it.
func withHandshakeTimeout(d time.Duration) Option { return func(c *config) { c.handshake = d } }

// withWriterIdlePeriod sets how long a connection's writer waits without
// work before it exits, writerIdlePeriod by default. Only tests set it,
// through export_test.go.
func withWriterIdlePeriod(d time.Duration) Option { return func(c *config) { c.writerIdle = d } }

// withTapHook makes the tap call f with each call's method before anything
// else, so that a test can make it panic. Only tests set it, through
// export_test.go.
func withTapHook(f func(method string)) Option { return func(c *config) { c.tapHook = f } }

// withPublishHook makes Publish call f with each request before anything
// else: tests make a handler panic with it. Only tests set it, through
// export_test.go.
func withPublishHook(f func(req *roomcastv1.PublishRequest)) Option {
	return func(c *config) { c.publishHook = f }
}

// withDecodeHook makes the codec call f with each checked request's
// message before it decodes it: tests make a decode panic with it. Only
// tests set it, through export_test.go.
func withDecodeHook(f func(msg any)) Option {
	return func(c *config) { c.decodeHook = f }
}

// WithMaxWriteHold bounds how long a busy connection's writer lets
// messages gather before it sends its streams their next responses, so
// that each carries more of them (see pacing.go): it holds in proportion to
// how late the machine lets it run, so not at all on an idle one, and never
// delays a message by more than d beyond that. The default is
// DefaultMaxWriteHold (50ms); 0 turns holding off.
func WithMaxWriteHold(d time.Duration) Option { return func(c *config) { c.maxWriteHold = d } }

// withClock makes the server read its clock (Server.now, in ns) from f.
// Only tests set it.
func withClock(f func() int64) Option { return func(c *config) { c.clock = f } }

// withHoldHook makes a connection's writer call f with each hold as it
// begins (pacing.go). Only tests set it.
func withHoldHook(f func(d time.Duration)) Option { return func(c *config) { c.holdHook = f } }

// withPenaltyClock makes the penalties (penalty.go) read now instead of
// time.Now: tests freeze it so that a penalty cannot end mid-test.
func withPenaltyClock(now func() time.Time) Option {
	return func(c *config) { c.penaltyClock = now }
}
