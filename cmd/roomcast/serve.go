package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roomcast/roomcast/broker"
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
and reflection, over plaintext gRPC, so keep it on loopback or a trusted
network. It logs the addresses it listens on (key "addr"; port 0 picks a free
port), and serves Prometheus metrics at /metrics on --metrics-listen.

On SIGINT or SIGTERM it drains: health turns NOT_SERVING, publishes are
refused, subscriber streams end with UNAVAILABLE so their clients reconnect,
and calls in flight get up to --drain-timeout to finish before the remaining
connections are closed. It then exits with status 0. A second signal kills
it at once.`,
	maxArgs: 0,
	setup: func(fs *flag.FlagSet) runFunc {
		cfg := &serveConfig{level: slog.LevelInfo}
		fs.StringVar(&cfg.listen, "listen", envOr("ROOMCAST_LISTEN", defaultListen),
			"serve gRPC on `ADDR` (host:port); also set by $ROOMCAST_LISTEN")
		fs.StringVar(&cfg.metricsListen, "metrics-listen", envOrUnset("ROOMCAST_METRICS_LISTEN", defaultMetricsListen),
			"serve Prometheus metrics at /metrics on `ADDR`; \"\" disables them; also set by $ROOMCAST_METRICS_LISTEN")
		fs.IntVar(&cfg.maxMessageBytes, "max-message-bytes", server.DefaultMaxMessageBytes,
			"refuse published messages (payload, content type and headers) over `N` bytes; must leave --backlog-bytes room for about 1 KiB of envelope")
		fs.IntVar(&cfg.backlogMessages, "backlog-messages", broker.DefaultBacklogMessages,
			"cut off a subscriber more than `N` messages behind in a room")
		fs.IntVar(&cfg.backlogBytes, "backlog-bytes", broker.DefaultBacklogBytes,
			"cut off a subscriber more than `N` bytes of messages behind in a room")
		fs.IntVar(&cfg.maxRooms, "max-rooms-per-session", server.DefaultMaxRoomsPerSession,
			"refuse joins past `N` rooms on one Subscribe stream")
		fs.DurationVar(&cfg.drainTimeout, "drain-timeout", defaultDrainTimeout,
			"on SIGINT or SIGTERM, give calls in flight up to `DURATION` to finish; 0 closes them at once")
		fs.TextVar(&cfg.level, "log-level", slog.LevelInfo,
			"log at `LEVEL`: debug, info, warn or error")
		return cfg.run
	},
}

type serveConfig struct {
	listen, metricsListen string
	maxMessageBytes       int
	backlogMessages       int
	backlogBytes          int
	maxRooms              int
	drainTimeout          time.Duration
	level                 slog.Level
}

func (cfg *serveConfig) run(ctx context.Context, _ []string, _, stderr io.Writer) int {
	log := newLogger(stderr, cfg.level)
	opts := []server.Option{
		server.WithLogger(log),
		server.WithMaxMessageBytes(cfg.maxMessageBytes),
		server.WithMaxRoomsPerSession(cfg.maxRooms),
		server.WithBrokerOptions(broker.WithBacklog(cfg.backlogMessages, cfg.backlogBytes)),
	}
	var reg *prometheus.Registry
	if cfg.metricsListen != "" {
		reg = prometheus.NewRegistry()
		for _, c := range []prometheus.Collector{
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		} {
			if err := reg.Register(c); err != nil {
				log.Error("registering metrics", "err", err)
				return exitFail
			}
		}
		opts = append(opts, server.WithMetrics(reg))
	}
	srv, err := server.New(opts...)
	if err != nil {
		// Every error of New is about its options, which come from flags.
		fmt.Fprintf(stderr, "roomcast serve: %v\n", err)
		return exitUsage
	}
	defer srv.Close() // after Shutdown, does nothing

	lis, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.listen, "err", err)
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
		metrics = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}

	// Both servers run until shut down; an error before that is a failure.
	failed := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(lis); err != nil {
			failed <- fmt.Errorf("gRPC server: %w", err)
		}
	})
	log.Info("serving gRPC", "addr", lis.Addr().String())
	if metrics != nil {
		wg.Go(func() {
			if err := metrics.Serve(mlis); !errors.Is(err, http.ErrServerClosed) {
				failed <- fmt.Errorf("metrics server: %w", err)
			}
		})
		log.Info("serving metrics", "addr", mlis.Addr().String(), "path", "/metrics")
	}

	code := exitOK
	select {
	case <-ctx.Done():
		log.Info("shutting down", "drain_timeout", cfg.drainTimeout)
	case err := <-failed:
		log.Error("stopping", "err", err)
		code = exitFail
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
	log.Info("stopped")
	return code
}
