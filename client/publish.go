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
//
// The server refuses a bad room name, header or session id with
// codes.InvalidArgument and a message over its size limit with
// codes.ResourceExhausted; status.Code(err) reports the code. After Close,
// Publish returns ErrClosed.
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
// codes.InvalidArgument without sending it (use Publish for such bytes).
func (c *Client) PublishText(ctx context.Context, room, text string, opts ...PublishOption) (uint64, error) {
	if !utf8.ValidString(text) {
		return 0, &opError{op: "publish to " + strconv.Quote(room), cause: status.Error(codes.InvalidArgument, "text is not valid UTF-8; publish it as data")}
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
	req.ContentType, req.Headers, req.SessionId, req.ExcludeSession = p.contentType, p.headers, p.session, p.exclude
	resp, err := c.rpc.Publish(ctx, req)
	if err != nil {
		if c.isClosed() {
			return 0, ErrClosed
		}
		return 0, rpcError(ctx, "publish to "+strconv.Quote(req.GetRoom()), err)
	}
	return resp.GetOffset(), nil
}
