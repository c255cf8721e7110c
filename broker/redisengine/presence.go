package redisengine

import (
	"context"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// AddMember implements broker.Engine.
func (e *Engine) AddMember(ctx context.Context, room, session string, info map[string]string) error {
	return nil
}

// RemoveMember implements broker.Engine.
func (e *Engine) RemoveMember(ctx context.Context, room, session string) error { return nil }

// Members implements broker.Engine.
func (e *Engine) Members(ctx context.Context, room string, limit int) ([]*roomcastv1.Member, int, error) {
	return nil, 0, nil
}
