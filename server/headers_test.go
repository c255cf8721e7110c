package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/rawh2"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// The header bomb of issue #13: a stream whose header block names one
// 4 KB binary metadata entry of the HPACK table a thousand times costs a
// few bytes on the wire per reference, and grpc-go, which refuses the stream
// for its size, decoded all of it all the same, stream after stream, on a
// connection it kept. The server now closes the connection at the first
// list over the limit, with GOAWAY ENHANCE_YOUR_CALM, before grpc-go reads
// it, over plaintext and over TLS: the PING sent after the bomb is never
// answered. A client on another connection goes on.
func TestHeaderBombClosesTheConnection(t *testing.T) {
	for _, tc := range rawTransports(t) {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			var log syncBuffer
			_, addr := start(t, append(tc.opts, server.WithMetrics(reg), server.WithLogger(slog.New(slog.NewTextHandler(&log, nil))))...)
			ctx := testCtx(t)
			bystanderGoesOn := calmBystander(t, ctx, addr, tc.dial...)

			h := tc.connectRaw(t, addr)
			sendHeaderBomb(t, ctx, h, reg)
			if line := log.String(); !strings.Contains(line, "header list over the limit") || !strings.Contains(line, "peer="+h.LocalAddr().String()) {
				t.Errorf("log %q does not say a header list from %s was cut off", line, h.LocalAddr())
			}
			bystanderGoesOn()
		})
	}
}

// sendHeaderBomb sends h a call whose 1000 header fields name one 4000-byte
// table entry (4 MB of headers), and checks that the server closes the
// connection with GOAWAY ENHANCE_YOUR_CALM, counted once.
func sendHeaderBomb(t *testing.T, ctx context.Context, h *rawh2.Conn, reg *prometheus.Registry) {
	t.Helper()
	value := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, 3000)) // 4000 bytes: one table entry
	bomb := make([]hpack.HeaderField, 1000)
	for i := range bomb {
		bomb[i] = hpack.HeaderField{Name: "x-bomb-bin", Value: value}
	}
	if _, err := rawCall(h, roomcastv1.BrokerService_Publish_FullMethodName, bomb, false); err != nil {
		t.Fatal(err)
	}
	h.Ping() // fails if the server has closed the connection already
	expectCalmed(t, ctx, h, "a list of 4 MB of headers")
	if got := counter(t, reg, "roomcast_header_flood_closes_total"); got != 1 {
		t.Errorf("roomcast_header_flood_closes_total = %v, want 1", got)
	}
}

// Header lists up to the limit are served, however often: calls that each
// carry an 8 KiB token afresh (never indexed), then a list of exactly the
// limit, on one connection; the list one byte longer closes it.
func TestHeaderListsUpToTheLimitAreServed(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, addr := start(t, server.WithMetrics(reg))
	ctx := testCtx(t)
	h := dialRaw(t, addr)
	method := roomcastv1.BrokerService_Publish_FullMethodName
	served := func(extra []hpack.HeaderField) {
		t.Helper()
		id, err := rawCall(h, method, extra, true)
		if err != nil {
			t.Fatal(err)
		}
		if end, err := h.WaitStream(ctx, id); err != nil || end.Reset {
			t.Fatalf("a call with a list of %d bytes ended with %+v (%v); want a response", listSize(method, extra), end, err)
		}
	}
	token := hpack.HeaderField{Name: "authorization", Value: "Bearer " + strings.Repeat("t", 8<<10), Sensitive: true}
	for range 20 {
		served([]hpack.HeaderField{token})
	}
	pad := hpack.HeaderField{Name: "x-pad"}
	pad.Value = strings.Repeat("p", server.DefaultMaxHeaderBytes-int(listSize(method, []hpack.HeaderField{pad})))
	served([]hpack.HeaderField{pad})

	pad.Value += "p"
	expectClosedForOneByteOver(t, ctx, h, reg, method, pad)
}

// expectClosedForOneByteOver sends a call with the extra fields, whose
// header list is one byte over the limit, and checks that it closes the
// connection, counted once in roomcast_header_flood_closes_total.
func expectClosedForOneByteOver(t *testing.T, ctx context.Context, h *rawh2.Conn, reg *prometheus.Registry, method string, extra ...hpack.HeaderField) {
	t.Helper()
	rawCall(h, method, extra, true)
	h.Ping()
	if end, err := h.Wait(ctx); err != nil || end.PingAcked {
		t.Fatalf("a list one byte over the limit: the server sent %v; want the connection closed", end.Frames)
	}
	if got := counter(t, reg, "roomcast_header_flood_closes_total"); got != 1 {
		t.Errorf("roomcast_header_flood_closes_total = %v, want 1", got)
	}
}

// listSize is the size of a raw call's header list as HTTP/2 counts it.
func listSize(method string, extra []hpack.HeaderField) uint32 {
	var n uint32
	for _, f := range rawh2.GRPCHeaders("roomcast.test", method, extra...) {
		n += f.Size()
	}
	return n
}

// 64 KiB of metadata is refused: by the server when a client sends it
// anyway, and by a grpc-go client itself once it knows the limit.
func TestLargeMetadataIsRefused(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	var big []hpack.HeaderField
	for i := range 16 {
		big = append(big, hpack.HeaderField{Name: "x-large-" + string(rune('a'+i)), Value: strings.Repeat("v", 4<<10)})
	}
	// The grpc-go client connects first: the raw connection's closing
	// penalises their shared address (see penalty.go), and a new
	// connection from it would not be served.
	c := dial(t, addr)
	if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r"}); err != nil { // learns the limit
		t.Fatal(err)
	}
	// Sent anyway, it takes the connection down (with a GOAWAY, which the
	// client may not get to read): golang.org/x/net/http2 reads no more of a
	// header block far past the limit, and the connection cannot go on
	// without it, HPACK's table being the connection's.
	h := dialRaw(t, addr)
	rawCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	id, _ := rawCall(h, roomcastv1.BrokerService_Publish_FullMethodName, big, true) // the server may close before the last frame
	end, err := h.WaitStream(rawCtx, id)
	if closed, _ := closedBy(rawCtx, h); err == nil || !closed {
		t.Errorf("64 KiB of headers: stream ended with %+v (%v), connection closed %v; want the connection closed without a response", end, err, closed)
	}

	md := metadata.Pairs("x-large", strings.Repeat("v", 64<<10))
	_, err = c.Publish(metadata.NewOutgoingContext(ctx, md), &roomcastv1.PublishRequest{Room: "r"})
	if st := status.Convert(err); st.Code() != codes.Internal || !strings.Contains(st.Message(), "header list size") {
		t.Errorf("a call with 64 KiB of metadata: %v, want INTERNAL about the header list size", err)
	}
}

// The default leaves room for the largest bearer token the authenticator
// takes, and the limit can be raised.
func TestLargestTokenFitsTheHeaderLimit(t *testing.T) {
	addr := testjwt.StartServer(t)
	ctx := testCtx(t)
	tok := paddedToken(t, auth.MaxTokenLen-64)
	if _, err := dial(t, addr).Publish(bearer(ctx, tok), &roomcastv1.PublishRequest{Room: "r"}); err != nil {
		t.Errorf("publish with a %d-byte token: %v", len(tok), err)
	}

	_, raised := start(t, server.WithMaxHeaderBytes(128<<10))
	md := metadata.Pairs("x-large", strings.Repeat("v", 64<<10))
	if _, err := dial(t, raised).Publish(metadata.NewOutgoingContext(ctx, md), &roomcastv1.PublishRequest{Room: "r"}); err != nil {
		t.Errorf("64 KiB of metadata under a 128 KiB limit: %v", err)
	}
	if _, err := server.New(server.WithMaxHeaderBytes(100)); err == nil || !strings.Contains(err.Error(), "header bytes") {
		t.Errorf("New with a 100-byte header limit: %v", err)
	}
}

// paddedToken mints a token granting publish to r, padded with a long jti
// to between n-200 and n bytes.
func paddedToken(t testing.TB, n int) string {
	t.Helper()
	pad := n * 3 / 4
	for range 8 {
		claims := testjwt.Claims("big", testjwt.Audience, time.Now().Add(time.Hour), testjwt.Grants(t, "r", "", ""))
		claims.ID = strings.Repeat("p", pad)
		s := testjwt.Sign(t, jwt.SigningMethodHS256, testjwt.Secret, claims)
		if len(s) <= n && len(s) > n-200 {
			return s
		}
		pad += (n - 100 - len(s)) * 3 / 4
	}
	t.Fatalf("could not pad a token to %d bytes", n)
	return ""
}
