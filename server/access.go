package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/roomcast/roomcast/auth"
)

// access decides who may do what: the caller's identity, its grants, and
// its rate limits. With no authenticator every caller may do everything.
type access struct {
	authn          *auth.Authenticator
	publish        *auth.RateLimiter // nil: no limit
	anonPublish    *auth.RateLimiter // anonymous callers' publishes, with an authenticator; nil: publish's limit
	publishBytes   *byteRate         // bytes published per credential; nil: no limit
	readBytes      *byteRate         // bytes of History and Presence answers per credential; nil: no limit
	log            *failureLog
	sessions       sync.Map          // session id → *liveSession: the open Subscribe streams; see sessions.go
	byIdentity     sync.Map          // *auth.Identity → *liveSession: the same, by their current credential
	streams        *streamCounts     // Subscribe streams open per credential
	publishStreams *streamCounts     // PublishStream streams open per credential
	reads          *auth.RateLimiter // History and Presence calls; nil: no limit
	commands       *auth.RateLimiter // Subscribe commands over all a credential's streams; nil: no limit
	dir            sessionDirectory  // the sessions of the cluster's other nodes; see clustersessions.go
	callers        callerCache       // anonymous callers' identities, for calls (callIdentity)

	commandRefusals       *retryStatuses // the credential command rate's (see retrystatus.go)
	streamCommandRefusals *retryStatuses // a stream's command past its own rate (WithCommandRate)

	publishRefusals, readRefusals, bytesRefusals, anonRefusals *retryStatuses // see retrystatus.go
	readBytesRefusals                                          *retryStatuses

	// The crowded refusals of the publish rate, and of the anonymous
	// callers' publish rate, a credential may have within a second before
	// its connections are paused (see crowdedAllowance); 0 without a rate.
	publishCrowded, anonCrowded int
}

func newAccess(cfg *config) (*access, error) {
	a := &access{
		authn: cfg.authn, log: newFailureLog(cfg), streams: newSubscribeCounts(cfg.maxCredStreams),
		publishStreams:    newPublishStreamCounts(cfg.maxCredPublishStreams),
		bytesRefusals:     newRetryStatuses(func(wait time.Duration) error { return retryLater(wait, publishBytesMessage) }, 0),
		readBytesRefusals: newRetryStatuses(func(wait time.Duration) error { return retryLater(wait, readBytesMessage) }, 0),
	}
	var err error
	if a.publish, err = newRateLimiter("publish rate", cfg.publishRate, cfg.publishBurst); err != nil {
		return nil, err
	}
	a.publishCrowded = crowdedAllowance(cfg.publishRate)
	if cfg.authn != nil {
		rate, burst := cfg.anonPublishRate, cfg.anonPublishBurst
		if rate > 0 && cfg.publishRate > 0 { // strangers never get more than a credential
			rate, burst = min(rate, cfg.publishRate), min(burst, cfg.publishBurst)
		}
		if a.anonPublish, err = newRateLimiter("anonymous publish rate", rate, burst); err != nil {
			return nil, err
		}
		a.anonCrowded = crowdedAllowance(rate)
	}
	if a.reads, err = newRateLimiter("read rate", cfg.readRate, cfg.readBurst); err != nil {
		return nil, err
	}
	if a.commands, err = newRateLimiter("credential command rate", cfg.credCommandRate, cfg.credCommandBurst); err != nil {
		return nil, err
	}
	if cfg.publishByteRate > 0 {
		a.publishBytes = newByteRate(cfg.publishByteRate, cfg.publishByteBurst)
	}
	if cfg.readByteRate > 0 {
		a.readBytes = newByteRate(cfg.readByteRate, cfg.readByteBurst)
	}
	// Each rate's crowded refusals share the status of its longest advice.
	a.publishRefusals = newRetryStatuses(auth.RateLimitError, maxRetryAfter(a.publish))
	a.readRefusals = newRetryStatuses(func(wait time.Duration) error { return retryLater(wait, readRateMessage) }, maxRetryAfter(a.reads))
	a.anonRefusals = newRetryStatuses(func(wait time.Duration) error { return retryLater(wait, anonPublishMessage) }, maxRetryAfter(a.anonPublish))
	a.commandRefusals = newRetryStatuses(func(wait time.Duration) error {
		return retryCommand(wait, credCommandMessage)
	}, maxRetryAfter(a.commands))
	streamMsg := fmt.Sprintf("more than %v commands per second on this stream", cfg.commandRate)
	a.streamCommandRefusals = newRetryStatuses(func(wait time.Duration) error { return retryCommand(wait, streamMsg) }, 0)
	if cfg.commandRate > 0 {
		a.streamCommandRefusals.longest = oneToken(cfg.commandRate) // see tokenWait
	}
	return a, nil
}

// newRateLimiter returns the limiter of perSecond in bursts of burst, or
// nil (no limit) for a rate of 0; an error names the rate.
func newRateLimiter(name string, perSecond float64, burst int) (*auth.RateLimiter, error) {
	if perSecond <= 0 {
		return nil, nil
	}
	l, err := auth.NewRateLimiter(perSecond, burst)
	if err != nil {
		return nil, fmt.Errorf("server: %s: %w", name, err)
	}
	return l, nil
}

// maxRetryAfter is l's longest advice, or 0 without a limit.
func maxRetryAfter(l *auth.RateLimiter) time.Duration {
	if l == nil {
		return 0
	}
	return l.MaxRetryAfter()
}

// identity is the caller's identity: the authenticated one, or with no
// authenticator an anonymous one. An anonymous caller's subject names its
// client (see clientKey), whether the authenticator admitted it or there is
// none, so that every limit kept per subject is kept per anonymous client:
// one client's burst does not refuse all the others'.
func (a *access) identity(ctx context.Context) *auth.Identity {
	id, ok := auth.FromContext(ctx)
	if ok && id.Method != auth.MethodAnonymous {
		return id
	}
	anon := auth.Identity{Subject: auth.AnonymousSubject, Method: auth.MethodAnonymous}
	if ok {
		anon = *id // its grants
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		var buf [64]byte // the subject is built in one allocation
		anon.Subject = string(appendClientKey(append(buf[:0], anonymousPrefix...), p.Addr))
	}
	return &anon
}

// anonymousPrefix begins the subject of an anonymous caller, which its
// client key (appendClientKey) ends.
const anonymousPrefix = auth.AnonymousSubject + "@"

// allow reports whether id may act on room with perm. A refusal of a
// stream's command is logged here; a call's, by the interceptor that sees
// its status.
func (a *access) allow(id *auth.Identity, perm auth.Permission, room string) error {
	if a.authn == nil || id.Allows(perm, room) {
		return nil
	}
	err := status.Errorf(codes.PermissionDenied, "%s may not %s room %q", id.Subject, perm, room)
	a.refusedCommand(id, "join", err) // the only command that asks for a room
	return err
}

// allowPublish applies the publish rate of id's credential.
func (a *access) allowPublish(id *auth.Identity) error {
	_, err := a.takePublish(id)
	return err
}

// takePublish applies the publish rate of id's credential, or of an
// anonymous caller's address when the server authenticates others, and
// for a crowded refusal, how many the credential has had within the second
// (see auth.Decision.CrowdedInSecond); 0 for another.
func (a *access) takePublish(id *auth.Identity) (crowded int, err error) {
	if a.anonPublish != nil && (id == nil || id.Method == auth.MethodAnonymous) {
		return takeToken(a.anonPublish, a.anonRefusals, id)
	}
	return takeToken(a.publish, a.publishRefusals, id)
}

// publishCrowdedAllowance is how many crowded refusals of its publish rate
// id may have within a second before its connections are paused.
func (a *access) publishCrowdedAllowance(id *auth.Identity) int {
	if a.anonPublish != nil && (id == nil || id.Method == auth.MethodAnonymous) {
		return a.anonCrowded
	}
	return a.publishCrowded
}

// crowdedAllowance is the crowded refusals of a publish rate of perSecond
// that a credential may have within a second before its connections are
// paused: a fifth of the rate, at least freeRefusedCalls and at most
// freeCredentialCrowdedRefusals, which is a fifth of the default
// --publish-rate; 0 without a limit. Refusals past
// a rate cost the server about what the calls it serves do, and on the
// web listener most of it is net/http's whichever the call: an anonymous
// address looping past its 1000 publishes a second was refused 2,000 times
// a second within the credential's allowance, and cost the server twice
// what the calls it served did (issue #13 (i)). Callers that wait out
// their advice have few crowded refusals (see freeCrowdedRefusals), so a
// smaller rate's loop is held to a smaller share. History and Presence
// keep freeCredentialCrowdedRefusals: an honest client resyncing a
// thousand rooms has about 600 crowded refusals of the read rate.
func crowdedAllowance(perSecond float64) int {
	if perSecond <= 0 {
		return 0
	}
	return min(freeCredentialCrowdedRefusals, max(freeRefusedCalls, int(perSecond/5)))
}

// limitsPublishes reports whether some caller's publishes have a rate.
func (a *access) limitsPublishes() bool { return a.publish != nil || a.anonPublish != nil }

// allowRead applies the read rate (History and Presence calls) of id's
// credential.
func (a *access) allowRead(id *auth.Identity) error {
	_, err := a.takeRead(id)
	return err
}

// takeRead applies the read rate of id's credential, and for a crowded
// refusal, how many the credential has had within the second (see
// auth.Decision.CrowdedInSecond); 0 for another.
func (a *access) takeRead(id *auth.Identity) (crowded int, err error) {
	return takeToken(a.reads, a.readRefusals, id)
}

// takeToken takes a token of id's from l, if there is a limit, or returns
// the refusal of refusals for the wait l advises, and if it was crowded,
// how many crowded refusals id has had from l within the second.
func takeToken(l *auth.RateLimiter, refusals *retryStatuses, id *auth.Identity) (crowded int, err error) {
	if l == nil {
		return 0, nil
	}
	d := l.Take(id)
	if d.OK {
		return 0, nil
	}
	return d.CrowdedInSecond, refusals.refusal(d.RetryAfter)
}

// The messages of the refusals of the read rate, the publish and read byte
// rates and the anonymous callers' publish rate.
const (
	readRateMessage     = "History and Presence rate limit exceeded for this credential"
	publishBytesMessage = "this credential has published more bytes than its rate allows"
	readBytesMessage    = "this credential has been sent more bytes of History and Presence than its rate allows"
	anonPublishMessage  = "publish rate limit of anonymous callers exceeded for this client address"
	credCommandMessage  = "more commands per second than this credential may send over all its streams"
)

// retryLater is the RESOURCE_EXHAUSTED status of a call refused by a rate
// for wait: its message, then when to retry, which a google.rpc.RetryInfo
// detail also carries.
func retryLater(wait time.Duration, msg string) error {
	st := status.Newf(codes.ResourceExhausted, "%s; retry after %v", msg, wait.Round(time.Millisecond))
	if detailed, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); err == nil {
		st = detailed
	}
	return st.Err()
}

// allowCommand applies the command rate of id's credential, over all its
// streams. A command reply carries no details: the message says when to
// retry, and so does the reply's Error.retry_after (see retryCommand); the
// refusals share their statuses, as the calls' do.
func (a *access) allowCommand(id *auth.Identity) error {
	if a.commands == nil {
		return nil
	}
	if ok, wait := a.commands.Allow(id); !ok {
		return a.commandRefusals.refusal(wait)
	}
	return nil
}

// refresh authenticates token as the new credential of session, whose
// credential is current, and records it; a refusal is logged. It holds the
// session's lock throughout, so that a recheck of the session's credential
// (RecheckCredentials) sees the new one if this one authenticated the token
// with keys that have since changed.
func (a *access) refresh(session string, current *auth.Identity, token string) (*auth.Identity, error) {
	if a.authn == nil {
		return nil, status.Error(codes.FailedPrecondition, "this server does not authenticate: there is nothing to refresh")
	}
	v, ok := a.sessions.Load(session)
	if !ok {
		return nil, status.Error(codes.Internal, "the stream's session is not registered")
	}
	ls := v.(*liveSession)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	id, err := a.checkRefresh(current, token)
	if err != nil {
		a.refusedCommand(current, "refresh", err)
		return nil, err
	}
	a.setIdentity(ls, id)
	return id, nil
}

// checkRefresh authenticates token as a replacement for current: a valid
// credential for the same subject, of the same kind.
func (a *access) checkRefresh(current *auth.Identity, token string) (*auth.Identity, error) {
	id, err := a.authn.AuthenticateToken(token)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	if id.Subject != current.Subject {
		return nil, status.Errorf(codes.PermissionDenied, "a refresh must be for the stream's subject %q", current.Subject)
	}
	// Another kind would change what ends the stream: an API key never
	// expires, and a JWT is not revoked with the key file.
	if id.Method != current.Method {
		return nil, status.Errorf(codes.PermissionDenied, "a refresh must use the kind of credential the stream was opened with (%s), not %s", current.Method, id.Method)
	}
	return id, nil
}

// commandLimiter limits one stream's commands; nil means no limit.
func (cfg *config) commandLimiter() *rate.Limiter {
	if cfg.commandRate <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(cfg.commandRate), cfg.commandBurst)
}
