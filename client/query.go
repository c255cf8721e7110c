package client

import (
	"context"
	"strconv"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Member is a session listed in a room's presence: the generated
// roomcastv1.Member, re-exported like Message.
type Member = roomcastv1.Member

// HistoryQuery narrows what History returns. The zero value asks for the
// server's default: the oldest 100 messages the room retains.
type HistoryQuery struct {
	// After leaves out messages up to and including this offset; 0 for
	// every message retained.
	After uint64
	// Limit is the most messages returned: 0 for the server's default of
	// 100; the server returns at most 1000.
	Limit int
	// NewestFirst returns the newest messages, newest first, instead of
	// the oldest, oldest first.
	NewestFirst bool
}

// HistoryPage is what History returns.
type HistoryPage struct {
	// Messages are the room's retained messages asked for, in the order
	// asked for.
	Messages []*Message
	// Head is the room's newest offset and its epoch: offset 0 and an empty
	// epoch when the room has never had a message, or no longer retains
	// anything.
	Head Position
}

// History returns the messages room retains (see the server's
// --history-messages and --history-ttl) that q asks for, and the room's
// newest position. It is safe for concurrent use.
func (c *Client) History(ctx context.Context, room string, q HistoryQuery) (*HistoryPage, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	req := &roomcastv1.HistoryRequest{Room: room, After: q.After, Limit: uint32(min(max(q.Limit, 0), 1<<31)), NewestFirst: q.NewestFirst}
	resp, err := c.rpc.History(ctx, req)
	if err != nil {
		if c.isClosed() {
			return nil, ErrClosed
		}
		return nil, rpcError(ctx, "history of "+strconv.Quote(room), err, kindCall)
	}
	return &HistoryPage{Messages: resp.GetMessages(), Head: Position{Offset: resp.GetOffset(), Epoch: resp.GetEpoch()}}, nil
}

// PresenceList is what Presence returns.
type PresenceList struct {
	// Members are the room's visible members asked for, oldest joins first.
	Members []*Member
	// Total is how many visible members the room has in all, which may be
	// more than Members holds.
	Total int
}

// Presence returns the members of room that joined it with presence, at
// most limit of them (0 for the server's default of 1000; the server
// returns at most 10000), oldest joins first, and how many there are. It is
// safe for concurrent use.
func (c *Client) Presence(ctx context.Context, room string, limit int) (*PresenceList, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	resp, err := c.rpc.Presence(ctx, &roomcastv1.PresenceRequest{Room: room, Limit: uint32(min(max(limit, 0), 1<<31))})
	if err != nil {
		if c.isClosed() {
			return nil, ErrClosed
		}
		return nil, rpcError(ctx, "presence of "+strconv.Quote(room), err, kindCall)
	}
	return &PresenceList{Members: resp.GetMembers(), Total: int(resp.GetTotal())}, nil
}
