package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Publish implements BrokerService.Publish.
// The gRPC service serves it with publishMethod (see publishcall.go).
func (s *Server) Publish(ctx context.Context, req *roomcastv1.PublishRequest) (*roomcastv1.PublishResponse, error) {
	off, epoch, err := s.publishUnary(ctx, req, new(outgoing))
	if err != nil {
		return nil, err
	}
	return &roomcastv1.PublishResponse{Offset: off, Epoch: epoch}, nil
}

// publishUnary serves a unary Publish of req by the caller of ctx, with m
// for its message (see publish), returning the message's offset and its
// room's epoch.
func (s *Server) publishUnary(ctx context.Context, req *roomcastv1.PublishRequest, m *outgoing) (uint64, string, error) {
	if hook := s.cfg.publishHook; hook != nil {
		hook(req)
	}
	if s.isDraining() {
		return 0, "", status.Error(codes.Unavailable, "server is shutting down; publish to another instance or retry")
	}
	id, tapped := s.tappedCaller(ctx, roomcastv1.BrokerService_Publish_FullMethodName, s.access.checksPublishes())
	return s.publishBy(ctx, id, tapped, id.Subject, req, m)
}

// publish checks req as a publish by id and sequences it: validation, size
// limit, grants, publish rate and session ownership, in that order, then
// the broker (a unary gRPC Publish's rate token was taken by the tap,
// before all of these: see taprates.go). It is the one path of every publish, Publish's and
// PublishStream's, so the two cannot drift apart. ctx must name id's
// subject as the owner (broker.WithOwner), once for all of a stream's
// publishes. m, zero, holds the message it hands the broker, and is not
// to be used again: the broker may keep it. It returns the message's
// offset and the room's epoch; its errors are gRPC statuses.
func (s *Server) publish(ctx context.Context, id *auth.Identity, req *roomcastv1.PublishRequest, m *outgoing) (uint64, string, error) {
	return s.publishBy(ctx, id, false, "", req, m)
}

// publishBy is publish, for a call whose limits the tap applied if tapped
// (see tappedCall): its rate is then not applied again, and its byte rate
// only past a burst of debt (see reservePublishBytes).
// A non-empty owner is the owner the broker charges it to, which ctx then
// need not name (broker.PublishOptions.Owner): a unary call's context
// would be made for its one publish.
func (s *Server) publishBy(ctx context.Context, id *auth.Identity, tapped bool, owner string, req *roomcastv1.PublishRequest, m *outgoing) (uint64, string, error) {
	if err := validatePublish(req); err != nil {
		return 0, "", status.Error(codes.InvalidArgument, err.Error())
	}
	n := messageSize(req)
	if n > s.cfg.maxMessageBytes {
		return 0, "", status.Errorf(codes.ResourceExhausted, "message is %d bytes (payload, content type and headers); the limit is %d", n, s.cfg.maxMessageBytes)
	}
	if err := s.access.allow(id, auth.Publish, req.GetRoom()); err != nil {
		return 0, "", err
	}
	// The byte rate first: a publish it refuses spends no token of the
	// publish rate (but for a unary gRPC Publish, whose token the tap
	// took); its bytes are taken now and given back if the publish is then
	// refused. The rates before the sessions: on a cluster, naming a
	// session of another node costs a round trip to the engine, which the
	// rates must bound.
	if err := s.access.reservePublishBytes(id, n, tapped); err != nil {
		return 0, "", err
	}
	off, epoch, err := s.publishReserved(ctx, id, tapped, owner, req, m)
	if err != nil {
		s.access.refundPublishBytes(id, n)
	}
	return off, epoch, err
}

// publishReserved is publishBy once the publish's bytes are reserved.
func (s *Server) publishReserved(ctx context.Context, id *auth.Identity, tapped bool, owner string, req *roomcastv1.PublishRequest, m *outgoing) (uint64, string, error) {
	if err := s.publishToken(id, tapped); err != nil {
		return 0, "", err
	}
	if err := s.access.ownSession(ctx, id, "session_id", req.GetSessionId()); err != nil {
		return 0, "", err
	}
	if err := s.access.ownSession(ctx, id, "exclude_session", req.GetExcludeSession()); err != nil {
		return 0, "", err
	}
	msg := &m.msg             // m holds its payload and publish time too
	msg.PublishTime = &m.time // the broker stamps it in place
	msg.Room, msg.ContentType, msg.Headers, msg.PublisherSession = req.GetRoom(), req.GetContentType(), req.GetHeaders(), req.GetSessionId()
	switch p := req.GetPayload().(type) {
	case *roomcastv1.PublishRequest_Data:
		m.data.Data = p.Data
		msg.Payload = &m.data
	case *roomcastv1.PublishRequest_Text:
		m.text.Text = p.Text
		msg.Payload = &m.text
	}
	opts := broker.PublishOptions{Exclude: req.GetExcludeSession(), IdempotencyKey: req.GetIdempotencyKey(), Owner: owner}
	off, epoch, err := s.broker.PublishWith(ctx, msg, opts)
	if err != nil {
		return 0, "", brokerStatus(err)
	}
	return off, epoch, nil
}

// outgoing is a published message with room for either payload and for
// its publish time.
type outgoing struct {
	msg  roomcastv1.Message
	data roomcastv1.Message_Data
	text roomcastv1.Message_Text
	time timestamppb.Timestamp
}
