package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/tap"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Server serves BrokerService. Its methods are safe for concurrent use.
type Server struct {
	roomcastv1.UnimplementedBrokerServiceServer

	cfg     config
	started time.Time
	broker  *broker.Hub
	access  *access
	grpc    *grpc.Server
	health  *health.Server
	streams atomic.Int64 // open Subscribe streams
	live    sync.Map     // *session → struct{}: whose Sends the sweeper times
	writers sync.Map     // *connWriter → struct{}: the running connection writers, which the sweeper watches
	connsMu sync.Mutex
	conns   map[string]*outConn // by address: the connections with Subscribe streams

	// The sweeper's two clocks, from 1: a Send notes their readings when it
	// begins, so timing it costs an atomic load and store, not a clock read.
	stallClock  atomic.Int64 // counts write-timeout checks, stallChecksPerTimeout per write timeout
	detachClock atomic.Int64 // counts detachPeriods

	detached      atomic.Uint64      // streams moved off a blocked connection writer
	writes        writerCounts       // what the connection writers did, for tests and benchmarks of their coalescing
	panics        atomic.Uint64      // panics recovered in handlers, stream readers and connection writers
	commandFloods atomic.Uint64      // streams ended for commands past the rate limits
	paused        *pausedReaders     // Subscribe streams whose readers pause after refused commands
	pausedEnds    atomic.Uint64      // streams ended past paused's limits
	deferred      atomic.Uint64      // calls the tap refused and let through for their deadline (deferLongRefusals)
	held          heldTimers         // the deadline timers the tap's refusals leave (deferredrefusal.go)
	resets        *resetGuard        // closes connections that reset streams too fast
	guard         *connGuard         // connection cap and auth timeout
	tap           tap.ServerInHandle // authenticates a call from its headers; nil without an authenticator
	publishCalls  publishCalls       // what a unary Publish hands the interceptors, made once (publishcall.go)
	largeTurns    *largeTurns        // the turns large requests are decoded in; nil: none waits

	services map[string]grpc.ServiceInfo // the services served, by name, for unknownMethod; set in New
	unary    map[string]bool             // the full names of the unary methods served, for deferLongRefusals; set in New

	jsonFragments *fragmentCache // Watch batches in JSON: each entry rendered once (see webcodec.go)
	webCalls      sync.WaitGroup // web calls in flight; counted under mu (see enterWeb)
	webServers    []*http.Server // ServeWeb's, guarded by mu

	mu         sync.Mutex
	draining   bool
	drain      chan struct{}  // closed when Shutdown begins: sessions end with UNAVAILABLE
	stopped    chan struct{}  // closed when the server has stopped: the sweeper exits
	goroutines sync.WaitGroup // the sweeper, stream readers and connection writers
}

var _ roomcastv1.BrokerServiceServer = (*Server)(nil)

// New returns a server that is ready to Serve.
func New(opts ...Option) (_ *Server, err error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	b := cfg.broker
	if b == nil {
		if b, err = broker.New(cfg.brokerOpts...); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil { // it is ours to close
				b.Close()
			}
		}()
	}
	if _, backlog := b.BacklogLimits(); cfg.maxMessageBytes+messageOverhead > backlog {
		return nil, fmt.Errorf("server: max message size %d (plus %d bytes of envelope) exceeds the broker's backlog of %d bytes: every subscriber would lag on one message", cfg.maxMessageBytes, messageOverhead, backlog)
	}
	acc, err := newAccess(&cfg)
	if err != nil {
		return nil, err
	}
	acc.dir = b
	s := &Server{cfg: cfg, started: time.Now(), broker: b, access: acc, health: health.NewServer(), drain: make(chan struct{}), stopped: make(chan struct{}), conns: make(map[string]*outConn)}
	s.held.max, s.held.start = cmp.Or(cfg.heldTimers, defaultHeldTimers), s.started
	s.held.perSecond = cmp.Or(cfg.heldPerSecond, defaultHeldPerSecond)
	s.jsonFragments = newFragmentCache(defaultFragmentCacheBytes)
	s.resets = &resetGuard{rate: cfg.resetRate, burst: float64(cfg.resetBurst), maxHeaderBytes: uint32(cfg.maxHeaderBytes), log: cfg.log,
		messageLimits: messageLimits(cfg.requestLimits()), maxKeptStreams: maxKeptStreamsPerConn * int(cfg.maxStreamsPerConn),
		frames: newFrameBuckets(cfg.requestFrameRate)}
	creds := cfg.creds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	s.guard = newConnGuard(&cfg)
	s.paused = newPausedReaders(cfg.maxPaused, cfg.maxCredPaused)
	s.resets.penalties = s.guard.penalties
	if cfg.maxUnfinished > 0 {
		s.resets.unfinished = &unfinishedBudget{max: cfg.maxUnfinished, perAddr: cfg.maxUnfinishedPerAddr, paceRate: cfg.unfinishedReadRate, penalties: s.guard.penalties, log: cfg.log}
	}

	s.largeTurns = newLargeTurns(cfg.largeTurn, s.drain) // a stop ends the waits

	gopts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(s.codec()),
		// Requests a little over the message limit still reach Publish, which
		// says what the limit is; far larger ones are refused by gRPC itself.
		grpc.MaxRecvMsgSize(cfg.maxMessageBytes + messageOverhead),
		grpc.MaxConcurrentStreams(cfg.maxStreamsPerConn),
		// What a call's headers may cost before anything checks them; the
		// range was validated.
		grpc.MaxHeaderListSize(uint32(cfg.maxHeaderBytes)),
		grpc.WaitForHandlers(true), // Stop returns only once every handler has
		// Calls run on long-lived workers whose stacks have grown already,
		// rather than each on a new goroutine, whose stack grpc-go's
		// handling of a unary call grows several times over
		// (BenchmarkPublishServe). A stream keeps its worker while it lasts,
		// and a call that finds every worker busy gets a goroutine of its
		// own, as without workers: there are enough for the unary calls of
		// a few busy publishers.
		grpc.NumStreamWorkers(streamWorkers),
		grpc.Creds(s.resets.credentials(creds)),
		grpc.ConnectionTimeout(cfg.handshake), // see handshakeTimeout

		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:              cfg.keepaliveTime,     // ping a connection idle this long
			Timeout:           cfg.keepaliveTime / 3, // and close it if the ping is not answered
			MaxConnectionIdle: cfg.maxConnIdle,       // close it after this long without a call in flight; 0: never
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             5 * time.Second, // clients may not ping more often
			PermitWithoutStream: true,            // idle publishers may keep their connection warm
		}),
	}
	gopts = append(gopts, cfg.windowOptions()...) // fixed receive windows bound what a client pushes unread
	gopts = append(gopts, writeBatchOptions()...)
	gopts = append(gopts, bufferPoolOptions()...)
	var metrics *grpcprom.ServerMetrics
	if cfg.registry != nil {
		m := grpcprom.NewServerMetrics()
		if err := cfg.registry.Register(m); err != nil {
			return nil, fmt.Errorf("server: registering gRPC metrics: %w", err)
		}
		if err := cfg.registry.Register(newBrokerCollector(b, &s.detached, &s.panics, &s.resets.closed, &s.commandFloods, &s.pausedEnds, &s.paused.n)); err != nil {
			return nil, fmt.Errorf("server: registering broker metrics: %w", err)
		}
		if err := cfg.registry.Register(s.resets); err != nil { // its header closures
			return nil, fmt.Errorf("server: registering header metrics: %w", err)
		}
		if err := cfg.registry.Register(s.access.log.counts); err != nil {
			return nil, fmt.Errorf("server: registering refusal metrics: %w", err)
		}
		if err := cfg.registry.Register(s.guard); err != nil {
			return nil, fmt.Errorf("server: registering connection metrics: %w", err)
		}
		if s.largeTurns != nil {
			if err := cfg.registry.Register(s.largeTurns); err != nil {
				return nil, fmt.Errorf("server: registering large request metrics: %w", err)
			}
		}
		gopts = append(gopts, grpc.ChainStreamInterceptor(s.refuseDeferredStreams(metricsStreams(m)))) // its unary interceptor heads unaryChain's
		metrics = m
	}
	// The refusal log goes around authentication, so that the calls it
	// refuses are logged too; panic recovery after metrics, so that a call
	// ended by a panic is counted as INTERNAL (a Subscribe stream, in no grpc_server_* metric, in roomcast_panics_total only), and before the rest, so that a
	// panic in any of them is recovered too. Both, and the access log, are
	// one interceptor (see unary.go and streamcalls.go).
	var authUnary grpc.UnaryServerInterceptor
	var authStream grpc.StreamServerInterceptor
	if cfg.authn != nil { // after metrics, so refused calls are counted too
		in, err := auth.NewInterceptors(cfg.authn)
		if err != nil {
			return nil, err
		}
		s.tap = s.recoverTap(authTap(in, s.access.log, s.guard.authenticated, s.refusedInTap, s.tapLimits))
		gopts = append(gopts, grpc.InTapHandle(s.deferLongRefusals(s.tap))) // credentials are checked before a request is read
		authUnary, authStream = in.UnaryServerInterceptor(), in.StreamServerInterceptor()
	} else {
		s.tap = s.recoverTap(limitTap(s.refusedInTap, s.tapLimits))
		gopts = append(gopts, grpc.InTapHandle(s.deferLongRefusals(s.tap))) // anonymous callers' limits, before a request is read
	}
	var unaryMetrics grpc.UnaryServerInterceptor
	if metrics != nil {
		unaryMetrics = metricsUnary(metrics) // a unary Publish counted with its counters resolved once
	}
	s.initPublishCalls() // before unaryChain, which binds its handler
	gopts = append(gopts, grpc.ChainUnaryInterceptor(s.unaryChain(unaryMetrics, authUnary, len(cfg.grpcOpts) == 0)))
	// The per-credential stream limit goes after authentication.
	streams := s.streamInterceptors(authStream)
	if metrics == nil { // else the metrics interceptor is the first, and refuses them
		streams[0] = s.refuseDeferredStreams(streams[0])
	}
	gopts = append(gopts, grpc.ChainStreamInterceptor(streams...), grpc.UnknownServiceHandler(s.unknownMethod))
	gopts = append(gopts, cfg.statsHandlers()...) // none unless tracing is on
	s.grpc = grpc.NewServer(append(gopts, cfg.grpcOpts...)...)
	s.grpc.RegisterService(serviceDesc(), s)
	admin := roomcastv1.AdminService_ServiceDesc
	refuseDeferred(&admin)
	s.grpc.RegisterService(&admin, &adminService{s: s})
	healthpb.RegisterHealthServer(s.grpc, s.health)
	if err := registerReflection(s.grpc); err != nil {
		return nil, err
	}
	s.services = s.grpc.GetServiceInfo() // for unknownMethod
	s.unary = unaryMethods(s.services)
	if metrics != nil {
		metrics.InitializeMetrics(s.grpc)
	}
	s.stallClock.Store(1)
	s.detachClock.Store(1)
	s.goroutines.Add(2)
	go s.sweep()
	go s.watchBroker()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(roomcastv1.BrokerService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	return s, nil
}

// requestLimits are the size limits of the requests checked before they
// are decoded (see decode.go).
func (cfg *config) requestLimits() requestLimits {
	return requestLimits{publish: cfg.maxMessageBytes + messageOverhead, watch: maxWatchBytes(cfg.maxRooms)}
}

// streamWorkers is the number of grpc-go's stream workers: idle, each is a
// parked goroutine, its stack grown by the calls it ran.
const streamWorkers = 64

// messageOverhead bounds what the broker adds to a published message's
// payload, content type and headers: room, offset, timestamps, session ids
// and field tags.
const messageOverhead = 1 << 10

// Serve accepts connections on lis until Shutdown or Close; like
// grpc.Server.Serve, it returns nil after those. Connections count against
// the connection limit over all the listeners served.
func (s *Server) Serve(lis net.Listener) error {
	if err := s.grpc.Serve(s.guard.listener(lis)); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// Broker returns the broker the server publishes to.
func (s *Server) Broker() *broker.Hub { return s.broker }

// Shutdown stops the server gracefully: health reports NOT_SERVING, new
// publishes are refused, every Subscribe stream and Watch call ends with
// UNAVAILABLE (so its client reconnects, to another instance if there is
// one), and in-flight calls, gRPC and web (see ServeWeb), may finish until
// ctx is done, when the remaining connections are closed. It returns ctx's error if it had to force the stop. Calling it
// again, or after Close, does nothing.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.beginStop() {
		return nil
	}
	s.guard.pit.stop() // refused connections held are reset now, not after their hold
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	web := make(chan error, 1)
	go func() { web <- s.shutdownWeb(ctx) }()
	var err error
	select {
	case <-stopped:
	case <-ctx.Done():
		err = ctx.Err()
		s.grpc.Stop()
		<-stopped
	}
	if werr := <-web; err == nil {
		err = werr
	}
	s.finish()
	return err
}

// handshakeTimeout bounds a new connection's handshake: its TLS handshake,
// if any, and the client's HTTP/2 preface and SETTINGS. grpc-go's default
// is 120 s, and its Stop waits for every connection still in its
// handshake: a client that connected and sent nothing (a port scan, a
// load balancer's TCP check, a half-open connection) kept a server that
// had no auth timeout to close it from stopping for up to two minutes
// after its drain timeout. A client sends its preface as it connects;
// 10 s is the default auth timeout too.
const handshakeTimeout = 10 * time.Second

// Close stops the server at once, closing every connection. It is idempotent.
func (s *Server) Close() error {
	if s.beginStop() {
		s.grpc.Stop()
		s.closeWeb()
		s.finish()
	}
	return nil
}

// beginStop starts the drain, once: it reports false if a stop had begun.
// It wakes every live session while it holds mu (see Lock order in doc.go).
func (s *Server) beginStop() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.draining = true
	s.health.Shutdown() // NOT_SERVING for every service, before streams end
	close(s.drain)
	s.live.Range(func(k, _ any) bool { // each ends once it has sent what it holds
		k.(*session).wake()
		return true
	})
	return true
}

// sweep cuts off the sessions whose current Send has lasted longer than the
// write timeout, moves a session whose Send blocks its connection's writer
// to a goroutine of its own, and stops writers that have been idle (see
// writer.go), until the server has stopped. It checks write timeouts
// stallChecksPerTimeout times per timeout, so a stalled Send is caught after
// between one and one and a half timeouts.
func (s *Server) sweep() {
	defer s.goroutines.Done()
	stall := time.NewTicker(max(s.cfg.writeTimeout/stallChecksPerTimeout, time.Millisecond))
	defer stall.Stop()
	detach := time.NewTicker(detachPeriod)
	defer detach.Stop()
	idle := time.NewTicker(max(s.cfg.writerIdle, time.Millisecond))
	defer idle.Stop()
	for {
		select {
		case <-s.stopped:
			return
		case <-idle.C:
			s.guarded("sweeper", func() {
				s.writers.Range(func(k, _ any) bool {
					k.(*connWriter).stopIfIdle()
					return true
				})
			})
		case <-detach.C:
			s.guarded("sweeper", func() {
				now := s.detachClock.Add(1)
				s.writers.Range(func(k, _ any) bool {
					k.(*connWriter).retireIfBlocked(now)
					return true
				})
			})
		case <-stall.C:
			s.guarded("sweeper", func() {
				now := s.stallClock.Add(1)
				s.live.Range(func(k, _ any) bool {
					ss := k.(*session)
					if began := ss.sendStartedAt.Load(); began != 0 && now-began > stallChecksPerTimeout {
						ss.stall()
					}
					return true
				})
			})
		}
	}
}

// stallChecksPerTimeout is how often per write timeout the sweeper looks for
// stalled Sends.
const stallChecksPerTimeout = 4

func (s *Server) finish() {
	s.guard.stop()
	close(s.stopped)
	s.goroutines.Wait()
	s.broker.Close()
}

func (s *Server) isDraining() bool {
	select {
	case <-s.drain:
		return true
	default:
		return false
	}
}
