package client

import (
	"maps"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Option configures a Client; pass options to Dial.
type Option func(*config)

type config struct {
	creds    credentials.TransportCredentials
	dialOpts []grpc.DialOption
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.creds == nil {
		c.creds = insecure.NewCredentials()
	}
	return c
}

// WithTransportCredentials secures the connection with creds, such as
// credentials.NewTLS. The default (and what nil means) is insecure plaintext,
// which is meant for a server on the loopback interface or a trusted network.
func WithTransportCredentials(creds credentials.TransportCredentials) Option {
	return func(c *config) { c.creds = creds }
}

// WithDialOptions passes opts to grpc.NewClient, after the client's own
// options (the transport credentials), so they override them; several calls
// add up. The default is none.
//
// A subscriber receives messages of up to the server's maximum message size
// plus a small envelope; a server configured for messages of 4 MiB or more
// needs grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(n)) here.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *config) { c.dialOpts = append(c.dialOpts, opts...) }
}

// PublishOption sets a field of a published message; pass options to
// Client.Publish and Client.PublishText. Options are applied in order.
type PublishOption func(*publishConfig)

type publishConfig struct {
	contentType string
	headers     map[string]string
	session     string
	exclude     string
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
// delivered as Message.publisher_session. The default is none ("").
func WithSession(sessionID string) PublishOption {
	return func(p *publishConfig) { p.session = sessionID }
}

// WithExcludeSession delivers the message to every subscriber of the room
// except the session sessionID; pass your own Subscription.SessionID to
// broadcast to everyone but yourself. An id that names no live session
// excludes nobody. The default is to exclude nobody.
func WithExcludeSession(sessionID string) PublishOption {
	return func(p *publishConfig) { p.exclude = sessionID }
}
