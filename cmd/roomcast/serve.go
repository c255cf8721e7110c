package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/internal/serveconfig"
	"github.com/roomcast/roomcast/server"
)

// Defaults of serve's flags that have no constant in server or broker.
const (
	defaultListen        = "127.0.0.1:50051"
	defaultMetricsListen = "127.0.0.1:9464"
	defaultDrainTimeout  = 10 * time.Second
)

var serveCmd = &command{
	name:    "serve",
	summary: "run a broker server",
	detail: `
Run a roomcast server: roomcast.v1.BrokerService, with gRPC health checking
and reflection, and roomcast.v1.AdminService for its operator. It logs the
addresses it listens on (key "addr"; port 0 picks a free port), one access
line per call (--access-log-level), and serves Prometheus metrics at
/metrics and a status page at /status on --metrics-listen.

Browsers and other HTTP clients reach Publish, Watch, History and Presence
on --http-listen (Connect, gRPC-Web and gRPC, over HTTP/1.1 and HTTP/2),
with the same TLS, credentials and limits; pages of other origins need
--http-allowed-origins.

Key, secret and certificate files that their group or every user may
write are refused: fix them with chmod go-w.

Connections are plaintext unless --tls-cert and --tls-key are given;
--tls-client-ca adds mutual TLS. Plaintext is served only on a loopback
address (127.0.0.1, ::1, localhost) unless --insecure-plaintext says
otherwise.

Callers present a credential as "authorization: Bearer <token>" metadata: a
JWT (--jwt-* flags) or an API key (--api-keys-file, keys made with "roomcast
apikey new"); its grants say which rooms it may publish to, join and see the
presence of, and "admin": true allows AdminService. Without any credential
flag the server is open: every caller may do everything, and it logs a
warning saying so; AdminService then answers only callers on loopback.
Health checking and reflection need no credential.

On SIGHUP it reads the API key file, the JWT key files and the TLS
certificate, key and client CA again: streams of API keys no longer in the
file end with UNAUTHENTICATED, and those of keys whose grants changed with
UNAVAILABLE (to reconnect with them); new handshakes get the new
certificate. A file that fails to load is logged and the one read before
stays in use. JWT streams last until their token expires.

On SIGINT or SIGTERM it drains: health turns NOT_SERVING, publishes are
refused, subscriber streams end with UNAVAILABLE so their clients reconnect,
and calls in flight get up to --drain-timeout to finish before the remaining
connections are closed. It then exits with status 0. A second signal kills
it at once.

--otel-traces otlp traces every call with OpenTelemetry, exporting spans to
the collector that the standard OTEL_EXPORTER_OTLP_* environment variables
name (stdout prints them instead); it is off by default, since it costs
every message sent. Spans still buffered are flushed on shutdown.`,
	maxArgs: 0,
	setup: func(fs *flag.FlagSet) runFunc {
		cfg := &serveConfig{level: slog.LevelInfo}
		d := serveconfig.Defaults()
		fs.StringVar(&cfg.listen, "listen", defaultListen,
			"serve gRPC on `ADDR` (host:port)")
		fs.StringVar(&cfg.metricsListen, "metrics-listen", defaultMetricsListen,
			"serve Prometheus metrics at /metrics on `ADDR`, in plain HTTP without credentials; \"\" disables them, and so does $ROOMCAST_METRICS_LISTEN set empty")
		cfg.web.define(fs)
		cfg.transport.define(fs)
		cfg.creds.define(fs)
		cfg.engine.define(fs)
		cfg.operator.define(fs)
		cfg.tracing.define(fs)
		cfg.profile.define(fs)
		fs.IntVar(&cfg.limits.MaxMessageBytes, "max-message-bytes", d.MaxMessageBytes,
			"refuse published messages (payload, content type and headers) over `N` bytes; must leave --backlog-bytes room for about 1 KiB of envelope")
		fs.IntVar(&cfg.limits.BacklogMessages, "backlog-messages", d.BacklogMessages,
			"cut off a subscriber more than `N` messages behind in a room")
		fs.IntVar(&cfg.limits.BacklogBytes, "backlog-bytes", d.BacklogBytes,
			"cut off a subscriber more than `N` bytes of messages behind in a room")
		fs.IntVar(&cfg.limits.MaxRoomsPerSession, "max-rooms-per-session", d.MaxRoomsPerSession,
			"refuse joins past `N` rooms on one Subscribe stream")
		fs.Float64Var(&cfg.limits.PublishRate, "publish-rate", d.PublishRate,
			"allow each credential (anonymous callers: each client address, an IPv6 one by its /64) `N` publishes a second on average; 0 for no limit")
		fs.IntVar(&cfg.limits.PublishBurst, "publish-burst", d.PublishBurst,
			"allow each credential bursts of up to `N` publishes")
		fs.Float64Var(&cfg.limits.AnonPublishRate, "anonymous-publish-rate", d.AnonPublishRate,
			"with credentials (--jwt-* or --api-keys-file) and --allow-anonymous, allow each anonymous caller (each client address, an IPv6 one by its /64) `N` publishes a second on average instead of --publish-rate, and never more than it; 0: --publish-rate applies to them too")
		fs.IntVar(&cfg.limits.AnonPublishBurst, "anonymous-publish-burst", d.AnonPublishBurst,
			"with credentials and --allow-anonymous, allow each anonymous caller bursts of up to `N` publishes")
		fs.IntVar(&cfg.limits.PublishByteRate, "publish-byte-rate", d.PublishByteRate,
			"allow each credential (anonymous callers: each client address) to publish `N` bytes of messages a second on average; 0 for no limit")
		fs.IntVar(&cfg.limits.PublishByteBurst, "publish-byte-burst", d.PublishByteBurst,
			"allow each credential bursts of up to `N` bytes of messages")
		fs.Float64Var(&cfg.limits.ReadRate, "read-rate", d.ReadRate,
			"allow each credential (anonymous callers: each client address) `N` History and Presence calls a second on average, together; 0 for no limit")
		fs.IntVar(&cfg.limits.ReadBurst, "read-burst", d.ReadBurst,
			"allow each credential bursts of up to `N` History and Presence calls")
		fs.IntVar(&cfg.limits.ReadByteRate, "read-byte-rate", d.ReadByteRate,
			"send each credential (anonymous callers: each client address) `N` bytes of History and Presence answers a second on average, together; a call passes while the credential owes nothing and its answer is charged once built; 0 for no limit")
		fs.IntVar(&cfg.limits.ReadByteBurst, "read-byte-burst", d.ReadByteBurst,
			"send each credential bursts of up to `N` bytes of History and Presence answers")
		fs.Float64Var(&cfg.limits.CommandRate, "command-rate", d.CommandRate,
			"allow each Subscribe stream `N` commands a second on average; 0 for no limit")
		fs.IntVar(&cfg.limits.CommandBurst, "command-burst", d.CommandBurst,
			"allow each Subscribe stream bursts of up to `N` commands")
		fs.Float64Var(&cfg.limits.StreamResetRate, "stream-reset-rate", d.StreamResetRate,
			"close a client connection that resets streams (cancels calls) faster than `N` a second on average: the HTTP/2 rapid reset attack; 0 for no limit")
		fs.IntVar(&cfg.limits.StreamResetBurst, "stream-reset-burst", d.StreamResetBurst,
			"allow each client connection bursts of up to `N` stream resets, saved up at --stream-reset-rate from when it connects")
		fs.Float64Var(&cfg.limits.CredCommandRate, "credential-command-rate", d.CredCommandRate,
			"allow each credential (anonymous callers: each client address) `N` Subscribe commands a second on average over all its streams; 0 for no limit")
		fs.IntVar(&cfg.limits.CredCommandBurst, "credential-command-burst", d.CredCommandBurst,
			"allow each credential bursts of up to `N` Subscribe commands over all its streams")
		fs.IntVar(&cfg.limits.MaxRefusedCommands, "max-refused-commands", d.MaxRefusedCommands,
			"end a Subscribe stream with more than `N` commands refused by --command-rate or --credential-command-rate within a second; 0 never does")
		fs.IntVar(&cfg.limits.MaxRefusedCalls, "max-refused-calls", d.MaxRefusedCalls,
			"close a client connection with more than `N` calls refused before they run (unauthenticated, past --max-streams-per-credential or owing bytes of --publish-byte-rate or --read-byte-rate) within a second; 0 never does")
		fs.IntVar(&cfg.limits.AddressRefusedCalls, "address-refused-calls", d.AddressRefusedCalls,
			"past `N` calls refused before they run within a second over all the connections of one client address (an IPv6 one by its /64), pause the reading of each connection refused further, 1 ms doubling with its own refusals; raise it, or 0 to turn it off, behind a proxy that hides its clients' addresses (each connection is still paused past its own 100)")
		fs.DurationVar(&cfg.limits.AbusePenalty, "abuse-penalty", d.AbusePenalty,
			"after closing a connection for abuse (a header list past --max-header-bytes, resets past --stream-reset-rate, refused calls past --max-refused-calls, a request announced far over its method's limit, the most unfinished requests past --max-unfinished-bytes), serve no new connection from its address (an IPv6 one by its /64) for a second, doubling up to `DURATION` while it keeps at it; 0 turns it off")
		fs.IntVar(&cfg.limits.MaxStreams, "max-streams", d.MaxStreams,
			"end Subscribe streams past `N` open on the server at once")
		fs.IntVar(&cfg.limits.MaxCredStreams, "max-streams-per-credential", d.MaxCredStreams,
			"end Subscribe streams past `N` open at once with one credential (anonymous callers: per client address)")
		fs.IntVar(&cfg.limits.MaxCredPublishStreams, "max-publish-streams-per-credential", d.MaxCredPublishStreams,
			"refuse PublishStream streams past `N` open at once with one credential (anonymous callers: per client address)")
		fs.IntVar(&cfg.limits.MaxPaused, "max-paused-streams", d.MaxPaused,
			"let at most `N` Subscribe streams pause reading at once, after a refused command or behind replies their client does not read (each may hold a --stream-window of commands unread, about twice its bytes): past it, a stream that would pause ends with RESOURCE_EXHAUSTED")
		fs.IntVar(&cfg.limits.MaxCredPaused, "max-paused-streams-per-credential", d.MaxCredPaused,
			"let at most `N` Subscribe streams of one credential (anonymous callers: of one client address) pause reading at once, as --max-paused-streams does over the server")
		fs.UintVar(&cfg.limits.MaxStreamsPerConnection, "max-streams-per-connection", d.MaxStreamsPerConnection,
			"allow one client connection `N` calls in flight at once")
		fs.IntVar(&cfg.limits.MaxHeaderBytes, "max-header-bytes", d.MaxHeaderBytes,
			"refuse calls whose metadata and headers take more than `N` bytes (as HTTP/2 counts them: 32 more per entry), closing the connection of a client that sends one (a grpc-go client refuses it itself); at least 1024")
		fs.IntVar(&cfg.limits.StreamWindow, "stream-window", d.StreamWindow,
			"let a client send at most `BYTES` on a stream that the server has not read (the HTTP/2 receive window; a PublishStream publisher gets at most this a round trip); 65536 to 2147483647, or 0 for grpc-go's dynamic windows (up to 16 MiB, with bandwidth-estimation pings), which ignores --conn-window")
		fs.Int64Var(&cfg.limits.MaxUnfinishedBytes, "max-unfinished-bytes", d.MaxUnfinishedBytes,
			"hold at most `BYTES` of request messages that clients have begun and not finished, over the server: past it, the client address holding the most gives way, losing all its connections that hold any and penalised (--abuse-penalty) if it held more than --max-unfinished-bytes-per-address, its largest connection if not; 0 turns the bound off")
		fs.Int64Var(&cfg.limits.MaxUnfinishedBytesPerAddress, "max-unfinished-bytes-per-address", d.MaxUnfinishedBytesPerAddress,
			"a client address's share of --max-unfinished-bytes: one that must give way for holding the most loses all its connections that hold any, and is penalised, only if it held more than `BYTES`; at least a request's receive limit (--max-message-bytes and 1 KiB)")
		fs.Int64Var(&cfg.limits.UnfinishedReadRate, "unfinished-read-rate", d.UnfinishedReadRate,
			"while a client address holds more than a quarter of --max-unfinished-bytes-per-address in unfinished requests, read what adds to it at `BYTES` a second over all its connections (bursts of a 32nd of that, at least 64 KiB), its sends waiting in TCP flow control; 0 turns pacing off")
		fs.IntVar(&cfg.limits.RequestFrameRate, "request-frame-rate", d.RequestFrameRate,
			"read each client address's frames that carry no publish (DATA frames on calls other than the publishes, such as Subscribe commands; a publish's DATA frames in which no message begins; SETTINGS, PRIORITY and unknown frames) at `N` a second over its connections, in bursts of as many: past it a connection's reads wait, with every call on it, its sends waiting in TCP flow control; 0 turns pacing off")
		fs.IntVar(&cfg.limits.LargeRequestTurn, "large-request-turn", d.LargeRequestTurn,
			"decode requests of `BYTES` or more on the gRPC port one at a time over the server, each followed by a rest as long as it took (at most 50 ms), so that copying large messages into memory takes at most half of one core and the other clients' calls are read meanwhile; a client address's requests wait for its own turn, then the server's; a request waits while its call lasts, and is refused with RESOURCE_EXHAUSTED past 16 MiB of its address's waiting (its first excepted) or 256 MiB of the server's; 0 turns it off")
		fs.IntVar(&cfg.limits.ConnWindow, "conn-window", d.ConnWindow,
			"let a client have at most `BYTES` in flight on a connection, over all its streams (the connection's HTTP/2 receive window); at least --stream-window")
		fs.IntVar(&cfg.limits.MaxConns, "max-connections", d.MaxConns,
			"close connections past `N` open at once as soon as they are accepted (mind ulimit -n too)")
		fs.DurationVar(&cfg.limits.MaxConnIdle, "max-connection-idle", d.MaxConnIdle,
			"close a connection with no call in flight for `DURATION`, with a GOAWAY; 0 keeps idle connections")
		fs.DurationVar(&cfg.limits.AuthTimeout, "auth-timeout", d.AuthTimeout,
			"with credentials, close a connection that has made no authenticated call within `DURATION` of connecting; 0 turns it off")
		fs.IntVar(&cfg.limits.AcceptPaceAfter, "accept-pace-after", d.AcceptPaceAfter,
			"with credentials and --auth-timeout, pace new connections (--accept-pace) while more than `N` await authentication")
		fs.Float64Var(&cfg.limits.AcceptPace, "accept-pace", d.AcceptPace,
			"past --accept-pace-after, accept at most `N` connections a second, leaving the rest in the kernel's backlog (each that authenticates lets one more in at once); 0 never paces")
		fs.IntVar(&cfg.limits.AcceptPaceBurst, "accept-pace-burst", d.AcceptPaceBurst,
			"past --accept-pace-after, accept bursts of up to `N` connections")
		fs.IntVar(&cfg.limits.MaxPendingPerAddress, "max-pending-per-address", d.MaxPendingPerAddress,
			"with credentials and --auth-timeout, refuse a new connection as soon as accepted while its client address (an IPv6 one by its /64) has `N` awaiting authentication (held unread for --refused-hold, then reset); 0 is no cap")
		fs.DurationVar(&cfg.limits.RefusedHold, "refused-hold", d.RefusedHold,
			"hold a connection refused past --max-pending-per-address open and unread for `DURATION` before resetting it, so that a client that redials each refusal at once can redial only as fast as its held connections end; 0 resets at once")
		fs.IntVar(&cfg.limits.RefusedHoldMax, "refused-hold-max", d.RefusedHoldMax,
			"hold at most `N` refused connections at once over the server (each a file descriptor), resetting the rest at once; 0 means a quarter of the open-file limit, at most 10000 (the hard limit, ulimit -Hn: Go raises the soft one to it)")
		fs.IntVar(&cfg.limits.MaxRooms, "max-rooms", d.MaxRooms,
			"refuse publishes and joins that would hold more than `N` rooms in memory")
		fs.Int64Var(&cfg.limits.MaxRetainedBytes, "max-retained-bytes", d.MaxRetainedBytes,
			"hold at most `N` bytes of messages over all rooms: past nine tenths, idle rooms' history is dropped, least recently published first; past N, publishes are refused; the default is half the memory of the machine or of its cgroup")
		fs.IntVar(&cfg.limits.MaxRoomsPerCredential, "max-rooms-per-credential", d.MaxRoomsPerCredential,
			"let one credential (one client address when anonymous) create at most `N` of the rooms held at once; 0 means a tenth of --max-rooms (at least 100)")
		fs.Int64Var(&cfg.limits.MaxRetainedBytesPerCredential, "max-retained-bytes-per-credential", d.MaxRetainedBytesPerCredential,
			"let one credential's messages fill at most `N` bytes of --max-retained-bytes; 0 means a quarter of it (at least 64 MiB)")
		fs.IntVar(&cfg.limits.HistoryMessages, "history-messages", d.HistoryMessages,
			"keep each room's newest `N` messages for History and resuming joins; 0 turns history off")
		fs.DurationVar(&cfg.limits.HistoryTTL, "history-ttl", d.HistoryTTL,
			"keep a room's history for `DURATION`")
		fs.DurationVar(&cfg.limits.WriteTimeout, "write-timeout", d.WriteTimeout,
			"cut off a subscriber whose stream takes no write for `DURATION`")
		fs.DurationVar(&cfg.limits.MaxWriteHold, "max-write-hold", d.MaxWriteHold,
			"let a busy connection's writer hold its next write for at most `DURATION`, when its wake-ups come late, so that each response carries more messages; 0 writes at once")
		fs.Float64Var(&cfg.limits.AuthLogRate, "auth-failure-log-rate", d.AuthLogRate,
			"log calls and commands refused for their credential or permissions, or before their request was read or decoded, with the client's address, at most `N` lines a second (the next line counts those left out); 0 logs none")
		fs.DurationVar(&cfg.drainTimeout, "drain-timeout", defaultDrainTimeout,
			"on SIGINT or SIGTERM, give calls in flight up to `DURATION` to finish; 0 closes them at once")
		fs.TextVar(&cfg.level, "log-level", slog.LevelInfo,
			"log at `LEVEL`: debug, info, warn or error")
		return cfg.run
	},
	configFile: true,
}

type serveConfig struct {
	listen, metricsListen string
	transport             transportFlags
	web                   webFlags // serve_web.go
	creds                 credentialFlags
	engine                engineFlags
	operator              operatorFlags      // serve_operator.go
	tracing               tracingFlags       // serve_tracing.go
	profile               profileFlags       // serve_profile.go
	limits                serveconfig.Limits // every limit, rate and retention flag
	drainTimeout          time.Duration
	level                 slog.Level

	authn *auth.Authenticator // made by serverOptions; nil when the server is open
}

// validate checks the flags that the server and broker do not check
// themselves. Its errors are usage errors.
func (cfg *serveConfig) validate() error {
	if err := cfg.transport.validate(cfg.listen); err != nil {
		return err
	}
	if err := cfg.web.validate(&cfg.transport); err != nil {
		return err
	}
	if err := cfg.creds.validate(); err != nil {
		return err
	}
	if err := cfg.engine.validate(cfg.transport.insecurePlaintext); err != nil {
		return err
	}
	if err := cfg.tracing.validate(); err != nil {
		return err
	}
	if err := cfg.operator.validate(); err != nil {
		return err
	}
	// Checked here, as the server sees it only with credentials.
	if l := cfg.limits; l.AnonPublishRate < 0 || (l.AnonPublishRate > 0 && l.AnonPublishBurst < 1) {
		return fmt.Errorf("--anonymous-publish-rate needs a positive --anonymous-publish-burst, got %v/s burst %d", l.AnonPublishRate, l.AnonPublishBurst)
	}
	if cfg.limits.MaxStreamsPerConnection < 1 || cfg.limits.MaxStreamsPerConnection > math.MaxUint32 {
		return fmt.Errorf("--max-streams-per-connection must be 1 to %d, got %d", uint32(math.MaxUint32), cfg.limits.MaxStreamsPerConnection)
	}
	return nil
}

func (cfg *serveConfig) run(ctx context.Context, _ []string, stdout, stderr io.Writer) int {
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "roomcast serve: %v\n", err)
		return exitUsage
	}
	// From the start, so that a SIGHUP while starting does not kill the
	// process (its default action): it is taken once serving.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log := newLogger(stderr, cfg.level)
	stopProfile, err := cfg.profile.start()
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFail
	}
	defer func() {
		if err := stopProfile(); err != nil {
			log.Error("writing the profile or trace", "err", err)
		}
	}()
	setMemoryLimit(log, os.Getenv, serveconfig.DefaultMemoryLimit(), cfg.limits.MaxRetainedBytes)
	opts, authAttrs, err := cfg.serverOptions(ctx, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFail
	}
	tp, err := cfg.tracing.provider(ctx, stdout)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFail
	}
	stopTracing := func() {}
	if tp != nil {
		// Flushed once the server has stopped, so that its calls' spans are
		// exported; on the paths that fail before, by the deferred call.
		stopTracing = sync.OnceFunc(func() {
			flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), tracingFlushTimeout)
			defer cancel()
			if err := tp.Shutdown(flush); err != nil {
				log.Warn("flushing traces failed: spans may be lost", "err", err)
			}
		})
		defer stopTracing()
		opts = append(opts, server.WithTracing(tp))
		log.Info("tracing calls with OpenTelemetry", "exporter", cfg.tracing.exporter)
	}
	var reg *prometheus.Registry
	if cfg.metricsListen != "" {
		if reg, err = serveconfig.NewRegistry(); err != nil {
			log.Error("registering metrics", "err", err)
			return exitFail
		}
		opts = append(opts, server.WithMetrics(reg))
	}
	gc, err := cfg.operator.startGC(log)
	if err != nil {
		log.Error("tuning the garbage collector", "err", err)
		return exitFail
	}
	if gc != nil {
		defer gc.Close()
	}
	srv, err := server.New(opts...)
	if errors.Is(err, broker.ErrUnavailable) { // the engine's store did not answer
		log.Error("cannot start: the engine's store is unreachable", "err", err)
		return exitFail
	} else if err != nil {
		// Every other error of New is about its options, which come from flags.
		fmt.Fprintf(stderr, "roomcast serve: %v\n", err)
		return exitUsage
	}
	defer srv.Close() // after Shutdown, does nothing

	lis, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.listen, "err", err)
		return exitFail
	}
	if !cfg.exposureChecks(log, lis.Addr(), authAttrs) {
		lis.Close()
		return exitFail
	}
	var metrics *http.Server
	var mlis net.Listener
	if reg != nil {
		if mlis, err = net.Listen("tcp", cfg.metricsListen); err != nil {
			lis.Close()
			log.Error("cannot listen for metrics", "addr", cfg.metricsListen, "err", err)
			return exitFail
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelError),
			ErrorHandling: promhttp.ContinueOnError,
		}))
		page := cfg.operator.statusPage(mux, srv, log)
		metrics = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		metrics.RegisterOnShutdown(page.Close)
	}

	var wlis net.Listener
	if cfg.web.listen != "" {
		if wlis, err = net.Listen("tcp", cfg.web.listen); err != nil {
			lis.Close()
			if mlis != nil {
				mlis.Close()
			}
			log.Error("cannot listen for web clients", "addr", cfg.web.listen, "err", err)
			return exitFail
		}
	}

	// The servers run until shut down; an error before that is a failure.
	failed := make(chan error, 3)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(lis); err != nil {
			failed <- fmt.Errorf("gRPC server: %w", err)
		}
	})
	log.Info("serving gRPC", "addr", lis.Addr().String(), "transport", cfg.transport.name())
	if metrics != nil {
		wg.Go(func() {
			if err := metrics.Serve(mlis); !errors.Is(err, http.ErrServerClosed) {
				failed <- fmt.Errorf("metrics server: %w", err)
			}
		})
		log.Info("serving metrics", "addr", mlis.Addr().String(), "path", "/metrics", "status_page", "/status")
	}

	if wlis != nil {
		var statusAddr net.Addr
		if mlis != nil {
			statusAddr = mlis.Addr()
		}
		webOpts := cfg.web.webOptions(&cfg.transport, statusAddr, log)
		wg.Go(func() {
			if err := srv.ServeWeb(wlis, webOpts...); err != nil {
				failed <- fmt.Errorf("web server: %w", err)
			}
		})
		log.Info("serving web clients", "addr", wlis.Addr().String(), "transport", cfg.transport.name())
	}

	code := exitOK
serving:
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down", "drain_timeout", cfg.drainTimeout)
			break serving
		case err := <-failed:
			log.Error("stopping", "err", err)
			code = exitFail
			break serving
		case <-hup:
			cfg.reload(log, srv)
		}
	}
	drain, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.drainTimeout)
	defer cancel()
	if err := srv.Shutdown(drain); err != nil {
		log.Warn("drain timed out: closed the remaining connections", "err", err)
	}
	if metrics != nil {
		if err := metrics.Shutdown(drain); err != nil {
			metrics.Close()
		}
	}
	wg.Wait()
	stopTracing()
	log.Info("stopped")
	return code
}

// serverOptions returns the server's options from the flags, loading the
// TLS certificate and the credential files, and attributes that describe
// the authentication for the log (nil when the server is open).
func (cfg *serveConfig) serverOptions(ctx context.Context, log *slog.Logger) ([]server.Option, []any, error) {
	engine, engineAttrs, err := cfg.engine.brokerOptions(ctx)
	if err != nil {
		return nil, nil, err
	}
	log.Info("rooms are kept by an engine", engineAttrs...)
	// validate checked MaxStreamsPerConnection's range.
	limits := cfg.limits
	if !cfg.creds.credentials() {
		limits.AnonPublishRate = 0 // every caller is anonymous: --publish-rate is theirs
	}
	opts := append([]server.Option{server.WithLogger(log)}, limits.ServerOptions()...)
	opts = append(opts, server.WithBrokerOptions(engine...))
	opts = append(opts, cfg.operator.serverOptions()...)
	creds, err := cfg.transport.transportCredentials()
	if err != nil {
		return nil, nil, err
	}
	if creds != nil {
		opts = append(opts, server.WithTransportCredentials(creds))
	}
	authn, attrs, err := cfg.creds.authenticator()
	if err != nil {
		return nil, nil, err
	}
	if authn != nil {
		opts = append(opts, server.WithAuthenticator(authn))
		cfg.authn = authn
	}
	return opts, attrs, nil
}

// reload reads the credential and TLS files again, as SIGHUP asks: the
// API key file and JWT keys go to the authenticator, after which the
// streams of revoked keys end (see server.RecheckCredentials), and the TLS
// certificate, key and client CAs to the handshakes that follow. A file that
// cannot be read or parsed is logged, and what it held before is kept:
// credentials and TLS apart, so that one bad file holds up only its own
// half.
func (cfg *serveConfig) reload(log *slog.Logger, srv *server.Server) {
	if cfg.transport.tls() {
		if err := cfg.transport.reloadTLS(); err != nil {
			log.Error("reload failed: still serving the TLS certificate and client CAs read before", "err", err)
		} else {
			log.Info("reloaded the TLS certificate", "transport", cfg.transport.name())
		}
	}
	if cfg.authn == nil {
		return
	}
	attrs, err := cfg.creds.reload(cfg.authn)
	if err != nil {
		log.Error("reload failed: still accepting the credentials read before", "err", err)
		return
	}
	revoked, changed := srv.RecheckCredentials()
	log.Info("reloaded credentials", append(attrs, "streams_revoked", revoked, "streams_changed", changed)...)
}

// exposureChecks logs how callers are authenticated, and warns about what
// the listener at addr exposes: plaintext beyond loopback, allowed by
// --insecure-plaintext, and an open server. It reports false, having logged
// why, when plaintext would be served beyond loopback without
// --insecure-plaintext: when a name such as "localhost" resolved to an
// address that is not loopback.
func (cfg *serveConfig) exposureChecks(log *slog.Logger, addr net.Addr, authAttrs []any) bool {
	loopback := isLoopbackAddr(addr)
	if !loopback && !cfg.transport.tls() {
		if !cfg.transport.insecurePlaintext {
			log.Error("cannot serve", "err", plaintextRefusal(addr.String()))
			return false
		}
		log.Error("INSECURE: serving plaintext gRPC beyond loopback (--insecure-plaintext): "+
			"credentials and messages cross the network unencrypted, readable and forgeable by anyone on the path; "+
			"use --tls-cert and --tls-key unless the network is trusted", "addr", addr.String())
	}
	switch {
	case authAttrs != nil:
		log.Info("authenticating callers", authAttrs...)
	case loopback:
		log.Warn("no credentials configured: the server is open, every caller may publish to, join and see the presence of every room; "+
			"fine on loopback, but give --jwt-*, --api-keys-file or --allow-anonymous before serving beyond it", "addr", addr.String())
	default:
		log.Error("INSECURE: no credentials configured on an address beyond loopback: the server is open, "+
			"anyone who can connect may publish to, join and see the presence of every room; "+
			"give --jwt-*, --api-keys-file or --allow-anonymous", "addr", addr.String(), "transport", cfg.transport.name())
	}
	return true
}
