package server_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/rawh2"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// labelled is the counter name{label=value} in reg, 0 if it has none.
func labelled(t testing.TB, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	return counterOf(t, reg, name, map[string]string{label: value})
}

// frozenPenalties stops the penalties' clock, so that no penalty ends
// while a slow test runs.
func frozenPenalties() server.Option {
	frozen := time.Now()
	return server.WithPenaltyClock(func() time.Time { return frozen })
}

// fromAddress dials from the local IP ip, another address of loopback.
func fromAddress(ip string) grpc.DialOption {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	})
}

// A connection closed for abuse, a rapid reset or a header list over the
// limit, penalises its address: a new connection from it is not served
// (held unread or closed, so a call on it fails), while a connection that
// address opened before goes on, and so does a client of another address.
// Before penalties, the attacker's next connection was served at once.
func TestAbuseClosePenalisesTheAddress(t *testing.T) {
	abuses := []struct {
		name   string
		reason string
		abuse  func(t *testing.T, h *rawh2.Conn, addr string)
	}{
		{"rapid reset", "rapid_reset", func(t *testing.T, h *rawh2.Conn, addr string) {
			if sent, err := h.RapidReset(addr, roomcastv1.BrokerService_Publish_FullMethodName, 4000); err != nil {
				t.Logf("the flood stopped after %d pairs: %v", sent, err)
			}
		}},
		{"header list", "header_list", func(t *testing.T, h *rawh2.Conn, _ string) {
			big := []hpack.HeaderField{{Name: "x-big", Value: strings.Repeat("a", 64<<10)}}
			if _, err := rawCall(h, roomcastv1.BrokerService_Publish_FullMethodName, big, false); err != nil {
				t.Logf("the list was cut off as it was written: %v", err)
			}
			h.Ping()
		}},
	}
	for _, tc := range rawTransports(t) {
		for _, ab := range abuses {
			t.Run(tc.name+"/"+ab.name, func(t *testing.T) {
				reg := prometheus.NewRegistry()
				_, addr := start(t, append(tc.opts, server.WithMetrics(reg), server.WithStreamResetRate(100, 200), frozenPenalties())...)
				ctx := testCtx(t)
				bystanderGoesOn := calmBystander(t, ctx, addr, tc.dial...) // from 127.0.0.1 too, connected first

				h := tc.connectRaw(t, addr)
				ab.abuse(t, h, addr)
				expectCalmed(t, ctx, h, ab.name)
				if n := labelled(t, reg, "roomcast_abuse_penalties_total", "reason", ab.reason); n != 1 {
					t.Errorf("roomcast_abuse_penalties_total{reason=%q} = %v, want 1", ab.reason, n)
				}

				again := roomcastv1.NewBrokerServiceClient(servertest.Dial(t, addr, tc.dial...))
				callCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				defer cancel()
				_, err := again.Publish(callCtx, &roomcastv1.PublishRequest{Room: "r"})
				if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
					t.Errorf("a call on a new connection from the penalised address: %v, want it not served", err)
				}
				if n := labelled(t, reg, "roomcast_penalised_connections_total", "outcome", "held") +
					labelled(t, reg, "roomcast_penalised_connections_total", "outcome", "closed"); n < 1 {
					t.Errorf("roomcast_penalised_connections_total = %v, want at least 1", n)
				}
				bystanderGoesOn()

				other := roomcastv1.NewBrokerServiceClient(servertest.Dial(t, addr, append(tc.dial, fromAddress("127.0.0.2"))...))
				if _, err := other.Publish(ctx, &roomcastv1.PublishRequest{Room: "r"}); err != nil {
					t.Errorf("a call from another address: %v", err)
				}
			})
		}
	}
}

// With penalties off, the next connection is served.
func TestAbusePenaltyZeroIsOff(t *testing.T) {
	_, addr := start(t, server.WithStreamResetRate(100, 200), server.WithAbusePenalty(0))
	ctx := testCtx(t)
	h := dialRaw(t, addr)
	h.RapidReset(addr, roomcastv1.BrokerService_Publish_FullMethodName, 4000)
	expectCalmed(t, ctx, h, "a rapid reset")
	if _, err := dial(t, addr).Publish(ctx, &roomcastv1.PublishRequest{Room: "r"}); err != nil {
		t.Errorf("a call on a new connection with penalties off: %v", err)
	}
}

// A connection closed for its refused calls penalises its address too: the
// calls of a client on a new connection from it are not served, not even
// refused, while one connected before is still answered.
func TestRefusedCallsClosePenalisesTheAddress(t *testing.T) {
	reg := prometheus.NewRegistry()
	addr := testjwt.StartServer(t, server.WithMetrics(reg), server.WithMaxRefusedCalls(20), frozenPenalties())
	ctx := testCtx(t)
	publish := func(ctx context.Context, c roomcastv1.BrokerServiceClient) error {
		_, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r"})
		return err
	}
	before := dial(t, addr)
	if err := publish(ctx, before); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("an unauthenticated call: %v, want UNAUTHENTICATED", err)
	}
	flood := dial(t, addr)
	for i := 0; status.Code(publish(ctx, flood)) != codes.Unavailable; i++ {
		if i == 2000 {
			t.Fatal("the flood's connection is still open after 2000 refused calls")
		}
	}
	if n := labelled(t, reg, "roomcast_abuse_penalties_total", "reason", "refused_calls"); n != 1 {
		t.Errorf("roomcast_abuse_penalties_total{reason=\"refused_calls\"} = %v, want 1", n)
	}
	late, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := publish(late, dial(t, addr)); status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("a call on a new connection from the penalised address: %v, want it not served", err)
	}
	if err := publish(ctx, before); status.Code(err) != codes.Unauthenticated {
		t.Errorf("a call on a connection opened before the penalty: %v, want UNAUTHENTICATED", err)
	}
}
