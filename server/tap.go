package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/tap"

	"github.com/roomcast/roomcast/auth"
)

// authTap returns the grpc.InTapHandle that authenticates each call from its
// headers, before grpc-go reads its body or starts a handler: a call with a
// missing or bad credential is answered UNAUTHENTICATED without its request
// being read, let alone decoded (a generated handler decodes before any
// interceptor runs). Calls to the public services, health and reflection,
// pass as they do the interceptors. The authenticated call's context
// carries its auth.Identity, which the interceptors then take as it is.
// A refusal is logged to log, as the interceptors' would be, and counted
// there, as no interceptor sees it.
//
// grpc-go runs it on the connection's reading goroutine, one call after
// another: what it costs is a credential check (a hash for an API key, a
// signature for a JWT), which the interceptors would have spent anyway.
//
// Each authenticated call is reported to authenticated, and each refused
// one to refused, with its context, which tells its connection (see
// connGuard), and how it counts. An authenticated call is then refused if
// limit, given its context, says so: a refusal that needs only the
// caller's identity costs no handler. The call goes on with the context
// limit returns.
func authTap(in *auth.Interceptors, log *failureLog, authenticated func(context.Context), refused func(context.Context, refusal), limit tapLimit) tap.ServerInHandle {
	authenticate := in.AuthFunc()
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if in.IsPublic(info.FullMethodName) {
			return ctx, nil
		}
		ctx2, err := authenticate(ctx) // the call's metadata is already in ctx
		if err != nil {
			log.refused(err, peerAddr(ctx), "rpc", info.FullMethodName)
			log.count(info.FullMethodName, reasonUnauthenticated)
			refused(ctx, abusive)
			return nil, err
		}
		authenticated(ctx2)
		ctx3, r, err := limit(ctx2, info.FullMethodName)
		if err != nil {
			refused(ctx2, r)
			return nil, err
		}
		return ctx3, nil
	}
}

// limitTap returns the grpc.InTapHandle of a server without an
// authenticator: every caller is anonymous, keyed by its client address
// (see access.identity), and limit refuses a call from that identity alone,
// before its request is read, as authTap does an authenticated one's. Each
// refused call is reported to refused, so that a connection whose calls
// keep being refused is paused, as one whose credentials are, and closed
// if they are not crowded refusals past a rate (see refusalKind).
// It costs a call nothing unless limit has a limit for its method.
func limitTap(refused func(context.Context, refusal), limit tapLimit) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		ctx2, r, err := limit(ctx, info.FullMethodName)
		if err != nil {
			refused(ctx, r)
			return nil, err
		}
		return ctx2, nil
	}
}

// tapLimit refuses a call, given its context and method, before its
// request is read, or returns the context it goes on with, and how the
// refusal counts toward its connection's pause (see refusedInTap).
type tapLimit func(ctx context.Context, method string) (_ context.Context, _ refusal, _ error)

// refusal is how a call the tap refused counts toward its connection's
// pause and closing; the zero refusal is uncounted.
type refusal struct {
	kind refusalKind
	// credCrowded is, for a crowdedRefusal, how many crowded refusals of
	// its rate its credential has had within the second, this one
	// included, over all its connections (auth.Decision.CrowdedInSecond).
	credCrowded int
	// credAllowance is, for a crowdedRefusal, how many of those its
	// credential may have before its connections are paused; 0: the
	// guard's own (freeCredentialCrowdedRefusals).
	credAllowance int
	// body and credBodies are, for a crowdedBodyRefusal, the bytes its body
	// may have sent, and its credential's crowded refusals' within the
	// second.
	body, credBodies int
}

// abusive is the refusal of an abusiveRefusal.
var abusive = refusal{kind: abusiveRefusal}

// refusalKind is how a call the tap refused counts toward its connection's
// pause and closing.
type refusalKind int

const (
	// uncounted: past a rate whose advice still had room (auth.Decision).
	// A client that waits out each RetryInfo is refused about once per call
	// it makes; pausing its connection would hold up its other calls too.
	uncounted refusalKind = iota
	// abusiveRefusal: unauthenticated, past the credential's streams, or
	// owing bytes of its publish or read byte rate (a PublishStream, or a
	// History or Presence call). It counts as the connection's refused
	// call: past freeRefusedCalls within a second on the connection, or
	// --address-refused-calls of its client address's, it pauses the
	// connection; past --max-refused-calls on it, it closes it.
	abusiveRefusal
	// crowdedRefusal: past a rate whose advice was crowded, so that its
	// callers are not waiting out their advice (or more of them wait at once
	// than the rate serves in its longest advice). Past freeCrowdedRefusals
	// on its connection within a second, or freeCredentialCrowdedRefusals
	// of its credential's, it pauses the connection, as an abusive refusal
	// does past freeRefusedCalls; it does not close it (see crowdedCall).
	crowdedRefusal
	// crowdedBodyRefusal: a unary Publish past its credential's byte
	// rate whose advice was crowded (see publishadvice.go). It counts as a
	// crowdedRefusal, and by the bytes its body may have sent, which the
	// server reads and throws away: past freeCrowdedBodies on its
	// connection within a second, or freeCredentialCrowdedBodies of its
	// credential's, it pauses the connection too; it never closes it.
	crowdedBodyRefusal
)

// freeRefusedCalls is how many calls the tap may refuse on one connection
// within a second before it pauses the connection: a proxy that carries
// many clients' calls over one connection, some with lapsed credentials,
// is not held up for them.
const freeRefusedCalls = 100

// freeCrowdedRefusals is how many crowded refusals (past a rate, see
// crowdedRefusal) one connection may have within a second before the tap
// pauses it. Callers that wait out their advice have none until more of
// them wait at once than the rate serves in its longest advice, and for a
// moment after that (see auth.RateLimiter) (64
// callers publishing past a rate of 1000 a second, in
// TestHonestPublishersAreNotPaused, were told at most 64 ms, where a
// second's worth of slots would crowd them). What reaches it is a client
// that resyncs more rooms at once than its read burst and the next
// second's reads (a thousand rooms at the default read rate make about
// 600), or a loop that ignores its answers. A client with many
// connections has as many of these allowances, so a credential has one of
// its own too (freeCredentialCrowdedRefusals).
const freeCrowdedRefusals = 1000

// freeCredentialCrowdedRefusals is how many crowded refusals of one rate
// (History and Presence, or the publish byte rate; for a publish rate, a
// fifth of the rate, at most this: crowdedAllowance) a credential may have within a second,
// over all its connections, before the tap pauses the connection of each
// further one: a loop over 20 connections, each within freeCrowdedRefusals,
// could otherwise be refused 20,000 times a second unpaused. An anonymous
// caller's credential is its client address (see access.identity). It is
// twice a connection's allowance because a credential is often shared,
// by a fleet of backends holding one API key, or a user's tabs: two of its
// clients resyncing a thousand rooms each at once stay within it (about
// 600 each), while a credential's loop over many connections is held near
// 2,000 a second plus about a dozen for each of its connections, rather
// than 1,000 for each. Only a connection that made a crowded call is
// paused, and by its own crowded calls: one that shares the credential
// with a loop (clients behind one address, a fleet on one key) and made
// one is paused a millisecond. A PublishStream's refused publishes count
// toward the credential's crowded refusals too (they take their tokens
// from the same bucket), though its stream is paused by its own rule.
const freeCredentialCrowdedRefusals = 2 * freeCrowdedRefusals

// refusedInTap tells the connection guard of a call the tap refused, then,
// past freeRefusedCalls abusive refusals within a second (or its
// address's --address-refused-calls, or
// freeCrowdedRefusals crowded ones, or a crowded one past its credential's
// allowance of its rate's: r.credAllowance or freeCredentialCrowdedRefusals), pauses the connection's reading, on
// whose goroutine the tap runs: 1 ms, doubled for each further refusal
// within the second, at most a second (see refusalPause). A client whose
// calls keep being refused (unauthenticated, past its streams, owing bytes
// of its publish or read byte rate, past a rate without waiting) is then read about a
// dozen times a second past its allowance rather than as fast as it can
// write: a loop of refused Subscribe streams over 25 connections cost the
// server most of a core (issue #13 (d)), and with an allowance for each
// connection alone, a collection every second or so. The pause holds up only that
// connection, but all of it: grpc-go runs the tap under the transport's
// lock, which its writer also takes as streams end.
func (s *Server) refusedInTap(ctx context.Context, r refusal) {
	var d time.Duration
	switch r.kind {
	case abusiveRefusal:
		d = s.guard.refusedCall(ctx)
	case crowdedRefusal:
		d = s.guard.crowdedCall(ctx, r.credCrowded, r.credAllowance)
	case crowdedBodyRefusal:
		d = s.guard.crowdedBodyCall(ctx, r.body, r.credCrowded, r.credBodies)
	}
	if d <= 0 {
		return
	}
	// A web call's tap runs on its handler's goroutine, not the reader's:
	// its connection's reader is held too (webguard.go).
	if c, ok := ctx.Value(webConnValueKey{}).(*resetConn); ok {
		c.holdReads(d)
	}
	if hook := s.cfg.tapPauseHook; hook != nil {
		hook(d)
	}
	// Not until the call's context ends: its deadline is the client's
	// grpc-timeout, which would let it skip the pause. A stop ends it.
	start := time.Now()
	pause(s.drain, d)
	s.guard.tapPaused(r.kind, min(time.Since(start), d))
}

// tapPaused counts a pause of d after a refusal of kind, in
// roomcast_refused_call_paused_seconds_total.
func (g *connGuard) tapPaused(kind refusalKind, d time.Duration) {
	if kind == abusiveRefusal {
		g.pausedRefused.Add(int64(d))
	} else {
		g.pausedCrowded.Add(int64(d))
	}
}

// tapPausedDesc is roomcast_refused_call_paused_seconds_total: what an
// operator behind a proxy or NAT looks for when its clients' calls are
// slow for others' refusals.
var tapPausedDesc = prometheus.NewDesc("roomcast_refused_call_paused_seconds_total",
	"Seconds client connections' reading was paused after calls the server refused before they ran, summed over connections, by kind: refused (unauthenticated, past a credential's streams, or a PublishStream, History or Presence call owing bytes of its byte rate; past 100 of the connection's, or --address-refused-calls of its address's, within a second) or crowded (past --publish-rate, --read-rate or --publish-byte-rate without waiting out the RetryInfo; past 1000 of the connection's, or of the credential's past a fifth of its publish rate (100 to 2000) or 2000 of another rate, within a second).",
	[]string{"kind"}, nil)

// collectTapPauses sends roomcast_refused_call_paused_seconds_total.
func (g *connGuard) collectTapPauses(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(tapPausedDesc, prometheus.CounterValue, time.Duration(g.pausedRefused.Load()).Seconds(), "refused")
	ch <- prometheus.MustNewConstMetric(tapPausedDesc, prometheus.CounterValue, time.Duration(g.pausedCrowded.Load()).Seconds(), "crowded")
}
