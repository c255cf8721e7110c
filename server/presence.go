package server

import (
	"context"

	"google.golang.org/grpc/mem"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/wire"
)

// presence serves BrokerService.Presence as an encoded PresenceResponse:
// the members' entries the broker encoded at their joins, shared by every
// answer, and the total.
func (s *Server) presence(ctx context.Context, req *roomcastv1.PresenceRequest) (*frame, error) {
	return s.read(ctx, read{method: roomcastv1.BrokerService_Presence_FullMethodName, room: req.GetRoom(), limit: req.GetLimit(), def: defaultPresenceLimit, most: maxPresenceLimit, perm: auth.Presence},
		func(limit int) (mem.BufferSlice, error) {
			return s.broker.PresenceAnswer(ctx, req.GetRoom(), limit, maxReplyBytes-wire.PresenceTrailerBytes)
		})
}

// Presence implements BrokerService.Presence for callers in this process
// and the web handler; the gRPC service is served by frameHandler.
func (s *Server) Presence(ctx context.Context, req *roomcastv1.PresenceRequest) (*roomcastv1.PresenceResponse, error) {
	return decoded[roomcastv1.PresenceResponse](s.presence(ctx, req))
}
