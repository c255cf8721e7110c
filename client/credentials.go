package client

import (
	"context"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// tokenCredentials sends a TokenSource's token as gRPC per-call credentials.
type tokenCredentials struct {
	source    TokenSource
	plaintext bool // the connection is unencrypted: send the token all the same
}

// streamTokenKey is the context key of the token a subscription fetched
// itself for the stream it opens with that context: it must know which
// token the stream carries, to refresh it before it expires.
type streamTokenKey struct{}

func withStreamToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, streamTokenKey{}, token)
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (t *tokenCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	token, ok := ctx.Value(streamTokenKey{}).(string)
	if !ok {
		var err error
		if token, err = t.source(ctx); err != nil {
			return nil, tokenSourceError(err)
		}
	}
	if token == "" {
		return nil, nil
	}
	return map[string]string{"authorization": "Bearer " + token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: a
// token is sent only over an encrypted connection, unless the client was
// configured for plaintext (meant for loopback).
func (t *tokenCredentials) RequireTransportSecurity() bool { return !t.plaintext }

// tokenSourceError is the status a call fails with when the token source
// fails: its own status if it has one, else codes.Unavailable, which a
// subscription retries.
func tokenSourceError(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Errorf(codes.Unavailable, "roomcast: token source: %v", err)
}

// tokenExpiry returns the exp claim of a JWT, read without verifying it;
// the zero time if token is not a JWT or has no exp.
func tokenExpiry(token string) time.Time {
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err != nil || claims.ExpiresAt == nil {
		return time.Time{}
	}
	return claims.ExpiresAt.Time
}

// Refresh schedule: at 80% of the remaining lifetime, but not sooner than
// minRefreshDelay from now unless the credential expires before that.
const (
	refreshAt       = 0.8
	minRefreshDelay = 100 * time.Millisecond
)

// refreshDelay returns how long to wait before refreshing a credential that
// expires at exp, and false if it has expired (or never does).
func refreshDelay(exp time.Time) (time.Duration, bool) {
	if exp.IsZero() {
		return 0, false
	}
	left := time.Until(exp)
	if left <= 0 {
		return 0, false
	}
	d := time.Duration(float64(left) * refreshAt)
	if d < minRefreshDelay && left > minRefreshDelay {
		d = minRefreshDelay
	}
	return d, true
}
