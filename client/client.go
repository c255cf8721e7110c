// Package client is the Go client of roomcast, the gRPC room broker: it
// publishes messages to rooms and subscribes to them.
//
// A Client is one gRPC connection. Publish and PublishText send one message
// each and return its offset in the room. Subscribe opens a session
// (Subscription) that joins rooms and receives, in order, every message
// published to them after the join:
//
//	c, err := client.Dial("127.0.0.1:50051")
//	...
//	defer c.Close()
//	sub, err := c.Subscribe(ctx, "chat.lobby")
//	...
//	defer sub.Close()
//	for msg, err := range sub.Messages() {
//		if err != nil {
//			return err // the stream ended: sub.Err() says why
//		}
//		fmt.Println(msg.GetRoom(), msg.GetOffset(), msg.GetText())
//	}
//
// Errors from the server keep their gRPC status (status.Code(err)); a few
// also match sentinel errors with errors.Is (ErrClosed, ErrAlreadyJoined,
// ErrNotJoined).
//
// This version does not reconnect: when the server ends a subscription (it
// does so when shutting down, with codes.Unavailable, and when the subscriber
// falls too far behind, with codes.ResourceExhausted), Subscription.Err
// reports why and the caller subscribes again.
package client

import (
	"fmt"
	"sync"

	"google.golang.org/grpc"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
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

	mu     sync.Mutex
	closed bool
	subs   map[*Subscription]struct{} // open subscriptions, closed by Close
}

// Dial returns a client of the server at target, a gRPC target such as
// "127.0.0.1:50051" or "dns:///roomcast.example.com:50051". Like
// grpc.NewClient, it does not connect: the connection is made by the first
// call and remade as needed, so an unreachable server is reported by the
// calls, with codes.Unavailable.
func Dial(target string, opts ...Option) (*Client, error) {
	cfg := newConfig(opts)
	dialOpts := append([]grpc.DialOption{grpc.WithTransportCredentials(cfg.creds)}, cfg.dialOpts...)
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("roomcast: dial %q: %w", target, err)
	}
	return &Client{conn: conn, rpc: roomcastv1.NewBrokerServiceClient(conn), subs: make(map[*Subscription]struct{})}, nil
}

// Close closes every open Subscription of the client (their Err reports
// ErrClosed), waits for their goroutines to end, then closes the connection.
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
	c.mu.Unlock()
	for _, s := range subs {
		s.Close()
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
