// Package client is the Go client of roomcast, the gRPC room broker: it
// publishes messages to rooms and subscribes to them, and keeps
// subscriptions going across lost connections and server restarts.
//
// A Client is one gRPC connection. Publish and PublishText send one message
// each and return its offset in the room; a Publisher (NewPublisher) sends
// many, from any number of goroutines, pipelined on one stream, and keeps
// going across lost connections. WithIdempotencyKey makes a publish safe to
// send again, which both then do by themselves when the connection breaks. Subscribe opens a Subscription
// that joins rooms and delivers, in order, every message published to them
// after the join, as Events:
//
//	c, err := client.Dial("127.0.0.1:50051")
//	...
//	defer c.Close()
//	sub, err := c.Subscribe(ctx, "chat.lobby")
//	...
//	defer sub.Close()
//	for ev, err := range sub.Events() {
//		if err != nil {
//			return err // the subscription ended for good: sub.Err() says why
//		}
//		switch {
//		case ev.Message != nil:
//			fmt.Println(ev.Message.GetRoom(), ev.Message.GetOffset(), ev.Message.GetText())
//		case ev.Gap != nil:
//			// Messages were lost: resynchronize ev.Gap.Room from elsewhere.
//		}
//	}
//
// # Reconnecting
//
// When a subscription's stream ends for any reason but Close, the end of the
// context given to Subscribe, or a permanent error (codes.Unauthenticated,
// codes.PermissionDenied, codes.InvalidArgument), the subscription opens a
// new stream, with exponential backoff and jitter (see Backoff), and joins
// every room again from the position of the last message it received in
// each. The server then replays what the subscription missed, so the
// application sees every message exactly once and in order. When the server
// can no longer replay them (the history window passed, or the server
// restarted and the room's epoch changed), the subscription says so with a
// Gap event for the room, and goes on from the room's current position. A
// Disconnected event reports the lost stream and a Reconnected event the new
// one, with the outcome for each room.
//
// # Errors
//
// Errors from the server keep their gRPC status (status.Code(err)); they
// also match sentinel errors with errors.Is: ErrUnavailable,
// ErrUnauthenticated, ErrPermissionDenied, ErrInvalidArgument,
// ErrRateLimited (see RetryAfter), ErrTooLarge, ErrAlreadyJoined,
// ErrNotJoined; and ErrClosed after Close.
//
// # Credentials
//
// WithTLS secures the connection; WithBearerToken and WithTokenSource send a
// bearer credential (a JWT or an API key) with every call, and
// WithTokenSource also refreshes live streams' credentials before they
// expire. A credential goes over plaintext only to this machine, unless
// WithInsecurePlaintextToken says otherwise.
package client

import (
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/loopback"
	"github.com/roomcast/roomcast/internal/vtcodec"
)

// Message is a message as delivered to subscribers: the generated
// roomcastv1.Message, re-exported so that callers need not import the
// generated package. Its payload is in the field it was published in: use
// GetText for messages sent with PublishText and GetData for those sent with
// Publish. Messages a Subscription delivers belong to the caller.
type Message = roomcastv1.Message

// Client is a connection to a roomcast server. It is safe for concurrent
// use; Close it when done.
type Client struct {
	conn *grpc.ClientConn
	rpc  roomcastv1.BrokerServiceClient
	cfg  config

	mu     sync.Mutex
	closed bool
	subs   map[*Subscription]struct{} // open subscriptions, closed by Close
	pubs   map[*Publisher]struct{}    // open publishers, closed by Close
}

// Dial returns a client of the server at target, a gRPC target such as
// "127.0.0.1:50051" or "dns:///roomcast.example.com:50051". Like
// grpc.NewClient, it does not connect: the connection is made by the first
// call and remade as needed, so an unreachable server is reported by the
// calls, with codes.Unavailable.
//
// The defaults: plaintext (WithTLS changes it), no credential
// (WithBearerToken, WithTokenSource), reconnect backoff from 100ms to 10s
// (WithReconnectBackoff), fixed HTTP/2 receive windows of 1 MiB per stream
// and 8 MiB per connection (WithDialOptions with grpc.WithInitialWindowSize
// and grpc.WithInitialConnWindowSize changes them), frames read into
// buffers of an unzeroed pool with a size class per power of two
// (WithDialOptions with experimental.WithBufferPool changes it), reads of
// up to 256 KiB a system call (on Linux, in plaintext) and writes gathered up to 256 KiB
// in a shared buffer (grpc.WithReadBufferSize, grpc.WithWriteBufferSize and
// grpc.WithSharedWriteBuffer change them). A
// credential over plaintext to a target that is not on this machine is
// refused (see WithInsecurePlaintextToken).
func Dial(target string, opts ...Option) (*Client, error) {
	cfg := newConfig(opts)
	if cfg.tokens != nil && cfg.plaintext() && !cfg.plaintextToken && !loopback.Target(target) {
		return nil, fmt.Errorf("roomcast: dial %q: refusing to send a bearer token in plaintext to a target that is not a loopback address: "+
			"anyone on the network could read it and call the server with it; connect with WithTLS, or on a network you trust add WithInsecurePlaintextToken", target)
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(cfg.creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  cfg.backoff.Initial,
				Multiplier: cfg.backoff.Factor,
				Jitter:     0.2,
				MaxDelay:   cfg.backoff.Max,
			},
			MinConnectTimeout: 20 * time.Second,
		}),
		// Requests and unary responses through vtprotobuf's generated
		// code rather than proto's reflection.
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(vtcodec.Codec{})),
	}
	if cfg.tokens != nil {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(&tokenCredentials{source: cfg.tokens, plaintext: cfg.plaintext()}))
	}
	dialOpts = append(dialOpts, flowControlOptions()...)
	dialOpts = append(dialOpts, bufferPoolOptions()...)
	dialOpts = append(dialOpts, ioBufferOptions(cfg.plaintext())...)
	dialOpts = append(dialOpts, cfg.dialOpts...)
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("roomcast: dial %q: %w", target, err)
	}
	return &Client{conn: conn, rpc: roomcastv1.NewBrokerServiceClient(conn), cfg: cfg, subs: make(map[*Subscription]struct{}), pubs: make(map[*Publisher]struct{})}, nil
}

// Close closes every open Subscription of the client (their Err reports
// ErrClosed) and every open Publisher, waits for their goroutines to end,
// then closes the connection.
// Calls after Close fail with ErrClosed. Close is idempotent: later calls
// return nil.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	subs := make([]*Subscription, 0, len(c.subs))
	for s := range c.subs {
		subs = append(subs, s)
	}
	pubs := make([]*Publisher, 0, len(c.pubs))
	for p := range c.pubs {
		pubs = append(pubs, p)
	}
	c.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
	for _, p := range pubs {
		p.Close()
	}
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("roomcast: close: %w", err)
	}
	return nil
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// track registers an open subscription so that Close closes it; false if
// the client is already closed.
func (c *Client) track(s *Subscription) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.subs[s] = struct{}{}
	return true
}

func (c *Client) forget(s *Subscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.subs, s)
}

// trackPublisher registers an open publisher so that Close closes it; false
// if the client is already closed.
func (c *Client) trackPublisher(p *Publisher) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.pubs[p] = struct{}{}
	return true
}

func (c *Client) forgetPublisher(p *Publisher) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pubs, p)
}
