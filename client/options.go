package client

import (
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"maps"
	"math"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Option configures a Client; pass options to Dial.
type Option func(*config)

type config struct {
	creds          credentials.TransportCredentials
	dialOpts       []grpc.DialOption
	tokens         TokenSource // nil: no credential
	refresh        bool        // tokens may change: refresh streams' credentials
	plaintextToken bool        // send tokens over plaintext beyond loopback
	backoff        Backoff

	publishAttempts int // sends of a publish with an idempotency key, at most
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.creds == nil {
		c.creds = insecure.NewCredentials()
	}
	c.backoff = c.backoff.withDefaults()
	if c.publishAttempts < 1 {
		c.publishAttempts = DefaultPublishAttempts
	}
	return c
}

// plaintext reports whether the connection is unencrypted.
func (c *config) plaintext() bool { return c.creds.Info().SecurityProtocol == "insecure" }

// WithTransportCredentials secures the connection with creds, such as
// credentials.NewTLS. The default (and what nil means) is insecure plaintext,
// which is meant for a server on the loopback interface or a trusted network.
func WithTransportCredentials(creds credentials.TransportCredentials) Option {
	return func(c *config) { c.creds = creds }
}

// WithTLS connects over TLS configured by cfg: RootCAs to trust a private
// CA, ServerName when the target's host is not the name in the server's
// certificate, Certificates for mutual TLS. nil means the system's roots and
// the target's host name. It is WithTransportCredentials(credentials.NewTLS(cfg)),
// which copies cfg. The default is plaintext.
func WithTLS(cfg *tls.Config) Option {
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return WithTransportCredentials(credentials.NewTLS(cfg))
}

// WithDialOptions passes opts to grpc.NewClient, after the client's own
// options (transport and per-call credentials, connection backoff), so they
// override them; several calls add up. The default is none.
//
// A subscriber receives messages of up to the server's maximum message size
// plus a small envelope; a server configured for messages of 4 MiB or more
// needs grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(n)) here.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *config) { c.dialOpts = append(c.dialOpts, opts...) }
}

// TokenSource returns the bearer credential (a JWT or an API key, without
// the "Bearer " prefix) to send with a call. The client calls it for every
// Publish and every Subscribe stream it opens, and again to refresh a live
// stream's credential, from any goroutine and concurrently: it must be safe
// for concurrent use, and should cache its token until shortly before it
// expires. ctx is the call's. An error fails the call with its gRPC status
// if it has one, else with codes.Unavailable (so a subscription retries
// later); an empty token sends no credential.
type TokenSource func(ctx context.Context) (string, error)

// WithBearerToken sends token as "authorization: Bearer <token>" with every
// call. The token is fixed: a subscription's stream cannot be refreshed, so
// a JWT's expiry ends it with ErrUnauthenticated; use WithTokenSource for
// tokens that expire. The default is no credential.
//
// Over a plaintext connection (the default, or insecure credentials given
// explicitly) a credential travels in the clear, so Dial refuses to send
// one to a target that is not on this machine (localhost, 127.0.0.0/8, ::1,
// a Unix socket) unless WithInsecurePlaintextToken says so. Use WithTLS
// for any other server.
func WithBearerToken(token string) Option {
	return func(c *config) {
		c.tokens = func(context.Context) (string, error) { return token, nil }
		c.refresh = false
	}
}

// WithTokenSource sends the token src returns as "authorization: Bearer
// <token>" with every call, under the same transport rule as
// WithBearerToken. The default is no credential.
//
// It also keeps a subscription's stream alive past its token's expiry: when
// the token the stream was opened (or last refreshed) with is a JWT with an
// exp claim (read without verifying the signature), the subscription calls
// src again once 80% of the token's remaining lifetime has passed (at the
// earliest 100ms later) and sends the new token in a RefreshCommand. A
// refresh that fails is retried on the same schedule against the old
// token's expiry; if the token expires all the same, the server ends the
// stream and the subscription ends with ErrUnauthenticated. Tokens that are
// not JWTs, or have no exp, are never refreshed. When a refreshed token no
// longer grants a room the subscription is in, the server leaves the room
// and the subscription drops it, with a Revoked event.
func WithTokenSource(src TokenSource) Option {
	return func(c *config) { c.tokens, c.refresh = src, src != nil }
}

// WithInsecurePlaintextToken lets the client send its bearer credential
// (WithBearerToken, WithTokenSource) over a plaintext connection to a
// target that is not on this machine, where anyone on the network path can
// read the credential and call the server with it. It is meant for networks
// trusted to keep traffic private, such as a sidecar's network namespace.
// The default is to refuse: Dial fails for such a target unless the
// connection is secured with WithTLS or WithTransportCredentials.
func WithInsecurePlaintextToken() Option {
	return func(c *config) { c.plaintextToken = true }
}

// Backoff is how long a Subscription waits before each attempt to
// reconnect. Before attempt n (1 for the first after the stream ended) it
// waits a random duration between 0 and min(Max, Initial*Factor^(n-1)):
// exponential backoff with full jitter. The attempt count starts over once
// a reconnected stream has rejoined every room.
//
// Zero fields take the defaults: Initial 100ms, Max 10s, Factor 2. A Factor
// below 1 counts as 1, and a Max below Initial as Initial.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	Factor  float64
}

// Backoff defaults.
const (
	DefaultBackoffInitial = 100 * time.Millisecond
	DefaultBackoffMax     = 10 * time.Second
	DefaultBackoffFactor  = 2
)

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = DefaultBackoffInitial
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoffMax
	}
	b.Max = max(b.Max, b.Initial)
	if b.Factor == 0 {
		b.Factor = DefaultBackoffFactor
	}
	b.Factor = max(b.Factor, 1)
	return b
}

// delay is how long to wait before attempt n, counted from 1.
func (b Backoff) delay(n int) time.Duration {
	ceil := float64(b.Initial) * math.Pow(b.Factor, float64(n-1))
	if math.IsInf(ceil, 0) || math.IsNaN(ceil) || ceil > float64(b.Max) {
		ceil = float64(b.Max)
	}
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// WithReconnectBackoff sets how long subscriptions wait between attempts to
// reconnect; the default is Backoff{} (100ms growing by 2 up to 10s, full
// jitter). The client's gRPC connection uses the same bounds (with gRPC's
// own 20% jitter) to redial a server it lost, so the two agree.
func WithReconnectBackoff(b Backoff) Option {
	return func(c *config) { c.backoff = b }
}

// DefaultPublishAttempts is how many times a publish with an idempotency
// key is sent at most, by default (see WithPublishAttempts).
const DefaultPublishAttempts = 5

// WithPublishAttempts sets how many times a publish with an idempotency key
// (WithIdempotencyKey) is sent at most when the server cannot be reached or
// the connection breaks before the answer: by Client.Publish after a
// codes.Unavailable error, waiting the reconnect backoff (WithReconnectBackoff)
// before each new attempt, and by a Publisher on each new stream. The server
// sequences such a message at most once however often it is sent. Publishes
// without a key are sent once. The default, and what n < 1 means, is
// DefaultPublishAttempts (5); 1 turns the retries off.
func WithPublishAttempts(n int) Option {
	return func(c *config) { c.publishAttempts = n }
}

// PublishOption sets a field of a published message; pass options to
// Client.Publish and Client.PublishText. Options are applied in order.
type PublishOption func(*publishConfig)

type publishConfig struct {
	contentType string
	headers     map[string]string
	session     string
	exclude     string
	key         string
}

// apply sets req's fields from p.
func (p *publishConfig) apply(req *roomcastv1.PublishRequest) {
	req.ContentType, req.Headers, req.SessionId, req.ExcludeSession = p.contentType, p.headers, p.session, p.exclude
	req.IdempotencyKey = p.key
}

// WithContentType sets the message's media type, such as
// "application/json", delivered as is as Message.content_type. The default is
// none ("").
func WithContentType(contentType string) PublishOption {
	return func(p *publishConfig) { p.contentType = contentType }
}

// WithHeaders adds application headers, delivered as is as Message.headers.
// Several calls add up; a later value replaces an earlier one for the same
// key. The map is copied. The default is no headers. The server accepts keys
// of 1 to 64 bytes of A-Z a-z 0-9 - _ . and at most 64 headers.
func WithHeaders(headers map[string]string) PublishOption {
	return func(p *publishConfig) {
		if p.headers == nil {
			p.headers = make(map[string]string, len(headers))
		}
		maps.Copy(p.headers, headers)
	}
}

// WithSession names the publisher's own session (a Subscription.SessionID),
// delivered as Message.publisher_session. The server refuses, with
// ErrPermissionDenied, an id that is not one of the caller's open sessions
// (same credential kind and subject, or without a credential the same
// client address): take it afresh from SessionID, since it changes when the
// subscription reconnects. The default is none ("").
func WithSession(sessionID string) PublishOption {
	return func(p *publishConfig) { p.session = sessionID }
}

// WithExcludeSession delivers the message to every subscriber of the room
// except the session sessionID; pass your own Subscription.SessionID to
// broadcast to everyone but yourself. The id must name one of the caller's
// open sessions, as for WithSession. The default is to exclude nobody.
func WithExcludeSession(sessionID string) PublishOption {
	return func(p *publishConfig) { p.exclude = sessionID }
}

// WithIdempotencyKey makes the publish safe to send again: the server
// sequences at most one message per key, publisher (credential) and room
// within 5 minutes, and answers a repeat with the first one's offset and
// epoch. With a key, Client.Publish and a Publisher send the message again
// by themselves when the connection is lost before the answer (see
// WithPublishAttempts), and so may you, with the same key and the same
// message. A key is at most 128 bytes of UTF-8; NewIdempotencyKey makes a
// random one. The default is none: the message is sent once.
func WithIdempotencyKey(key string) PublishOption {
	return func(p *publishConfig) { p.key = key }
}

// NewIdempotencyKey returns a new random key for WithIdempotencyKey: 128
// random bits, in 26 characters.
func NewIdempotencyKey() string {
	var b [16]byte
	crand.Read(b[:]) // documented to always fill b
	return keyEncoding.EncodeToString(b[:])
}

var keyEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// JoinOption changes a join; pass options to Subscription.Join.
type JoinOption func(*joinConfig)

type joinConfig struct {
	after *Position
}

// ResumeAfter joins the room from a position: the subscription first
// receives every message after p that the room still retains, then live
// messages, and JoinResult.Recovered is true. If the room no longer retains
// them all (evicted by size or age, or p.Epoch is not the room's epoch), it
// receives none of them, goes on live, and Recovered is false. An empty
// p.Epoch means the room's current epoch: use it only for an offset known to
// be current, such as one typed by hand. An offset past the room's newest
// fails the join with codes.OutOfRange. The default is to join live.
func ResumeAfter(p Position) JoinOption {
	return func(j *joinConfig) { j.after = &p }
}
