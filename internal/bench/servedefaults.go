package bench

import (
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/roomcast/roomcast/internal/serveconfig"
	"github.com/roomcast/roomcast/server"
)

// serveLimits are "roomcast serve"'s defaults, changed only where they
// would refuse or throttle the benchmark itself (every client of a run is
// anonymous on one loopback address, which is one credential), for a shape
// of subscribers streams over conns connections, streamsPerConn on one at
// most. It returns what it changed, in words, for the report.
func serveLimits(subscribers, conns, streamsPerConn int) (serveconfig.Limits, []string) {
	l := serveconfig.Defaults()
	var diffs []string
	l.PublishRate, l.PublishByteRate = 0, 0
	diffs = append(diffs, fmt.Sprintf("--publish-rate 0 and --publish-byte-rate 0 (no limits) instead of %d publishes/s and %d MiB/s per credential: every publisher of the bench is the same anonymous loopback address", serveconfig.DefaultPublishRate, server.DefaultPublishByteRate>>20))
	// Each connection's first stream, opened and closed to connect it, may
	// still be counted when the subscribers join.
	if need := subscribers + conns + maxPublishers; need > l.MaxCredStreams {
		diffs = append(diffs, fmt.Sprintf("--max-streams-per-credential %d instead of %d: every subscriber is the same anonymous address, and so is the stream that connects each connection", need, l.MaxCredStreams))
		l.MaxCredStreams = need
	}
	if need := subscribers + conns + maxPublishers; need > l.MaxStreams {
		diffs = append(diffs, fmt.Sprintf("--max-streams %d instead of %d", need, l.MaxStreams))
		l.MaxStreams = need
	}
	if need := uint(streamsPerConn + 1); need > l.MaxStreamsPerConnection {
		diffs = append(diffs, fmt.Sprintf("--max-streams-per-connection %d instead of %d", need, l.MaxStreamsPerConnection))
		l.MaxStreamsPerConnection = need
	}
	if need := conns + maxPublishers; need > l.MaxConns {
		diffs = append(diffs, fmt.Sprintf("--max-connections %d instead of %d", need, l.MaxConns))
		l.MaxConns = need
	}
	if subscribers > l.CredCommandBurst {
		diffs = append(diffs, fmt.Sprintf("--credential-command-rate 0 (no limit) instead of %.0f/s: %d joins from one anonymous address", l.CredCommandRate, subscribers))
		l.CredCommandRate = 0
	}
	return l, diffs
}

// maxPublishers bounds the publishers' connections and streams a server
// must allow beside the subscribers'.
const maxPublishers = 64

// serveLogger is serve's logger at its default level, its lines formatted
// but discarded rather than written to stderr.
func serveLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// serveAlwaysDiffers is what differs from "roomcast serve" in every trial
// of an in-process roomcast server.
var serveAlwaysDiffers = []string{
	"logs (the access log at its default level, " + server.DefaultAccessLogLevel.String() + ", included) are formatted by serve's text handler and discarded instead of written to stderr",
	"the metrics registry (Go, process and server collectors) is built as serve builds it, but no HTTP listener serves /metrics or /status",
	"listens on 127.0.0.1 port 0, plaintext, no credentials: serve's loopback default",
}

// serveDiffs is what differs from "roomcast serve"'s defaults over the
// shapes of cfg, each once; nil with --server.
func serveDiffs(cfg Config) []string {
	if cfg.Server != "" {
		return nil
	}
	out := slices.Clone(serveAlwaysDiffers)
	for _, sh := range cfg.shapes() {
		if !slices.ContainsFunc(sh.setups, func(s setup) bool { return roomcastServer(s.variant) }) {
			continue
		}
		subs := sh.subscribers()
		_, d := serveLimits(subs, sh.conns, (subs+sh.conns-1)/sh.conns)
		for _, x := range d {
			if !slices.Contains(out, x) {
				out = append(out, x)
			}
		}
	}
	return out
}
