package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Publish implements BrokerService.Publish.
func (s *Server) Publish(ctx context.Context, req *roomcastv1.PublishRequest) (*roomcastv1.PublishResponse, error) {
	if s.isDraining() {
		return nil, status.Error(codes.Unavailable, "server is shutting down; publish to another instance or retry")
	}
	if err := validatePublish(req); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if n := messageSize(req); n > s.cfg.maxMessageBytes {
		return nil, status.Errorf(codes.ResourceExhausted, "message is %d bytes (payload, content type and headers); the limit is %d", n, s.cfg.maxMessageBytes)
	}
	id := s.access.identity(ctx)
	if err := s.access.allow(id, auth.Publish, req.GetRoom()); err != nil {
		return nil, err
	}
	if err := s.access.ownSession(id, req.GetSessionId()); err != nil {
		return nil, err
	}
	if err := s.access.allowPublish(id); err != nil {
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
	off, epoch, err := s.broker.Publish(ctx, msg, req.GetExcludeSession())
	if err != nil {
		return nil, brokerStatus(err)
	}
	return &roomcastv1.PublishResponse{Offset: off, Epoch: epoch}, nil
}

// brokerStatus maps a broker error to the status a client sees.
func brokerStatus(err error) error {
	switch {
	case errors.Is(err, broker.ErrClosed):
		return status.Error(codes.Unavailable, "server is shutting down; retry on another instance")
	case errors.Is(err, broker.ErrUnavailable):
		// The engine's own message names its servers: not for clients.
		return status.Error(codes.Unavailable, "the broker's store is unreachable; a publish may or may not have been stored")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, broker.ErrAlreadyJoined):
		return status.Error(codes.AlreadyExists, "room already joined on this stream")
	case errors.Is(err, broker.ErrNotJoined):
		return status.Error(codes.NotFound, "room not joined on this stream")
	case errors.Is(err, broker.ErrFutureOffset):
		return status.Error(codes.OutOfRange, "position offset is past the room's newest offset")
	case errors.Is(err, broker.ErrTooManyRooms):
		return status.Error(codes.ResourceExhausted, "the server holds as many rooms as it may; retry later")
	case errors.Is(err, broker.ErrPresenceFull):
		return status.Error(codes.ResourceExhausted, "the room's presence is full; join without presence")
	}
	return status.Error(codes.Internal, err.Error())
}
