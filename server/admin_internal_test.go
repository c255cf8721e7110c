package server

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// TestOpenServerAdminOnlyFromLoopback checks allowAdmin on a server without
// an authenticator: calls from this machine pass, others are refused.
func TestOpenServerAdminOnlyFromLoopback(t *testing.T) {
	a := &access{}
	for _, tc := range []struct {
		addr net.Addr
		want codes.Code
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000}, codes.OK},
		{&net.TCPAddr{IP: net.IPv4(127, 9, 9, 9), Port: 4000}, codes.OK},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 4000}, codes.OK},
		{&net.UnixAddr{Name: "/run/roomcast.sock", Net: "unix"}, codes.OK},
		{&net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 4000}, codes.PermissionDenied},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 4000}, codes.PermissionDenied},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 4000}, codes.PermissionDenied},
		{nil, codes.PermissionDenied},
	} {
		ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: tc.addr})
		if err := a.allowAdmin(ctx); status.Code(err) != tc.want {
			t.Errorf("admin call from %v: %v, want %v", tc.addr, err, tc.want)
		}
	}
	if err := a.allowAdmin(context.Background()); status.Code(err) != codes.PermissionDenied {
		t.Errorf("admin call from an unknown peer: %v, want PERMISSION_DENIED", err)
	}
}
