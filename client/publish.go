package client

import (
	"context"
	"strconv"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Publish sends data as one message to room and returns the message's offset
// in the room once the server has sequenced it; delivery to subscribers is
// asynchronous. Subscribers receive the payload in Message.data (GetData).
// It is safe for concurrent use.
//
// Publish never publishes a message twice. Without an idempotency key it
// makes one attempt, which gRPC retries transparently only when the request
// provably never reached the server (the connection failed before the
// request went out, or the server refused the stream without reading it).
// Every other failure is returned as is, and Publish does not retry it,
// because the message may have been sequenced: codes.Unavailable
// (ErrUnavailable) after the request was sent, or codes.DeadlineExceeded,
// leaves the caller to decide (publish again and accept a possible
// duplicate, or check History). With a key (WithIdempotencyKey), which the
// server uses to sequence the message at most once, Publish itself sends it
// again after codes.Unavailable, with the reconnect backoff, up to the
// client's publish attempts (WithPublishAttempts), and a retry that reaches
// the server returns the first attempt's offset. These errors mean the
// message was refused before it was sequenced, so it is safe to send again
// once the cause is fixed: ErrInvalidArgument (a bad room name, header or
// session id), ErrTooLarge (over the server's size limit), ErrRateLimited
// (after RetryAfter(err)), ErrPermissionDenied and ErrUnauthenticated.
// status.Code(err) reports the gRPC code in every case. After Close, Publish
// returns ErrClosed.
//
// ctx's deadline bounds the call, which then fails with
// codes.DeadlineExceeded, but is not sent to the server as grpc-timeout,
// which costs the server two timers a call: the server learns that the call
// ended when the client cancels it, which resets its stream.
//
// A message published to a room nobody is subscribed to reaches no one
// (the server may keep it as the room's history, depending on its
// configuration).
func (c *Client) Publish(ctx context.Context, room string, data []byte, opts ...PublishOption) (uint64, error) {
	return c.publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Data{Data: data}}, opts)
}

// PublishText is Publish for a UTF-8 text payload, such as JSON: subscribers
// receive it in Message.text (GetText), which tools such as grpcurl show as
// text. text must be valid UTF-8: PublishText refuses anything else with
// codes.InvalidArgument (ErrInvalidArgument) without sending it (use Publish
// for such bytes).
func (c *Client) PublishText(ctx context.Context, room, text string, opts ...PublishOption) (uint64, error) {
	if !utf8.ValidString(text) {
		return 0, localError("publish to "+strconv.Quote(room), codes.InvalidArgument, "text is not valid UTF-8; publish it as data", kindPublish)
	}
	return c.publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: text}}, opts)
}

// publish completes req with opts and sends it.
func (c *Client) publish(ctx context.Context, req *roomcastv1.PublishRequest, opts []PublishOption) (uint64, error) {
	if c.isClosed() {
		return 0, ErrClosed
	}
	var p publishConfig
	for _, o := range opts {
		o(&p)
	}
	p.apply(req)
	attempts := 1
	if req.GetIdempotencyKey() != "" {
		attempts = c.cfg.publishAttempts
	}
	call := callContext(ctx) // see deadline.go
	for n := 1; ; n++ {
		resp, err := c.rpc.Publish(call, req)
		if err == nil {
			return resp.GetOffset(), nil
		}
		if c.isClosed() {
			return 0, ErrClosed
		}
		if n >= attempts || status.Code(err) != codes.Unavailable || !pause(ctx, c.cfg.backoff.delay(n)) {
			return 0, rpcError(ctx, "publish to "+strconv.Quote(req.GetRoom()), err, kindPublish)
		}
	}
}
