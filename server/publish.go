package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Publish implements BrokerService.Publish.
func (s *Server) Publish(ctx context.Context, req *roomcastv1.PublishRequest) (*roomcastv1.PublishResponse, error) {
	if hook := s.cfg.publishHook; hook != nil {
		hook(req)
	}
	if s.isDraining() {
		return nil, status.Error(codes.Unavailable, "server is shutting down; publish to another instance or retry")
	}
	return s.publish(ctx, s.caller(ctx), req)
}

// publish checks req as a publish by id and sequences it: validation, size
// limit, grants, publish rate and session ownership, in that order, then
// the broker. It is the one path of every publish, Publish's and
// PublishStream's, so the two cannot drift apart. Its errors are gRPC
// statuses.
func (s *Server) publish(ctx context.Context, id *auth.Identity, req *roomcastv1.PublishRequest) (*roomcastv1.PublishResponse, error) {
	if err := validatePublish(req); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	n := messageSize(req)
	if n > s.cfg.maxMessageBytes {
		return nil, status.Errorf(codes.ResourceExhausted, "message is %d bytes (payload, content type and headers); the limit is %d", n, s.cfg.maxMessageBytes)
	}
	if err := s.access.allow(id, auth.Publish, req.GetRoom()); err != nil {
		return nil, err
	}
	// The rate before the sessions: on a cluster, naming a session of
	// another node costs a round trip to the engine, which the rate must
	// bound.
	if err := s.access.allowPublish(id); err != nil {
		return nil, err
	}
	if err := s.access.allowPublishBytes(id); err != nil { // a PublishStream's publishes pass no tap
		return nil, err
	}
	if err := s.access.ownSession(ctx, id, "session_id", req.GetSessionId()); err != nil {
		return nil, err
	}
	if err := s.access.ownSession(ctx, id, "exclude_session", req.GetExcludeSession()); err != nil {
		return nil, err
	}
	msg := &roomcastv1.Message{
		Room:             req.GetRoom(),
		ContentType:      req.GetContentType(),
		Headers:          req.GetHeaders(),
		PublisherSession: req.GetSessionId(),
	}
	switch p := req.GetPayload().(type) {
	case *roomcastv1.PublishRequest_Data:
		msg.Payload = &roomcastv1.Message_Data{Data: p.Data}
	case *roomcastv1.PublishRequest_Text:
		msg.Payload = &roomcastv1.Message_Text{Text: p.Text}
	}
	opts := broker.PublishOptions{Exclude: req.GetExcludeSession(), IdempotencyKey: req.GetIdempotencyKey()}
	off, epoch, err := s.broker.PublishWith(broker.WithOwner(ctx, id.Subject), msg, opts)
	if err != nil {
		return nil, brokerStatus(err)
	}
	s.access.chargePublish(id, n)
	return &roomcastv1.PublishResponse{Offset: off, Epoch: epoch}, nil
}
