package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/broker"
)

// brokerStatus maps a broker error to the status a client sees: the one
// place that does, for Publish, History, Presence, commands and the end of a
// Subscribe stream. Messages name what the client can do about it.
func brokerStatus(err error) error {
	var lag *broker.LagError
	var gap *broker.GapError
	switch {
	case errors.As(err, &lag):
		return status.Error(codes.ResourceExhausted, lag.Error())
	case errors.As(err, &gap):
		return status.Error(codes.Unavailable, gap.Error())
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
	case errors.Is(err, broker.ErrCancelled):
		return status.Error(codes.Canceled, "the join was cancelled by a leave of the room before it completed")
	case errors.Is(err, broker.ErrFutureOffset):
		return status.Error(codes.OutOfRange, "position offset is past the room's newest offset")
	case errors.Is(err, broker.ErrTooManyRooms):
		return status.Error(codes.ResourceExhausted, "the server holds as many rooms as it may; retry later")
	case errors.Is(err, broker.ErrRoomQuota):
		return status.Error(codes.ResourceExhausted, "this credential created as many rooms as one may hold; use existing rooms, or retry once some expire")
	case errors.Is(err, broker.ErrOverBudget):
		return status.Error(codes.ResourceExhausted, "the server holds as many message bytes as it may; retry later")
	case errors.Is(err, broker.ErrBytesQuota):
		return status.Error(codes.ResourceExhausted, "this credential's messages fill as many bytes as one may hold; retry once some expire")
	case errors.Is(err, broker.ErrPresenceFull):
		return status.Error(codes.ResourceExhausted, "the room's presence is full; join without presence")
	case errors.Is(err, broker.ErrKeyTooLong):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, broker.ErrKeysUnsupported):
		return status.Error(codes.Unimplemented, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
