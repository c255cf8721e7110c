package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// liveHeap is the process's heap after a collection: what is still held.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// The header bomb of issue #13, bounded: streams whose header block names
// one 4 KiB binary metadata entry of the HPACK table a thousand times, with
// no body and no credential. Each costs a few bytes on the wire per
// reference, and the server 3 KB once it decodes the base64 of each; with
// grpc-go's own limit (16 MiB a stream) all of it was kept while the calls
// waited for their bodies. The header list limit refuses each stream at
// once and keeps none of it.
func TestHeaderBombIsRefusedAndNotKept(t *testing.T) {
	_, addr := start(t)
	h := dialRaw(t, addr)
	const streams, refs = 16, 1000
	value := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, 3000)) // 4000 bytes: one table entry
	bomb := make([]hpack.HeaderField, refs)
	for i := range bomb {
		bomb[i] = hpack.HeaderField{Name: "x-bomb-bin", Value: value}
	}
	before := liveHeap()
	ids := make([]uint32, streams)
	for i := range ids {
		var err error
		if ids[i], err = rawCall(h, roomcastv1.BrokerService_Publish_FullMethodName, bomb, false); err != nil {
			t.Fatal(err)
		}
	}
	// A refusal comes at once; without one, give the server time to decode
	// everything before weighing what it kept.
	ctx, cancel := context.WithTimeout(testCtx(t), 5*time.Second)
	defer cancel()
	var unrefused []uint32
	for _, id := range ids {
		if end, err := h.WaitStream(ctx, id); err != nil || !end.Reset || end.Code != http2.ErrCodeFrameSize {
			unrefused = append(unrefused, id)
		}
	}
	kept := int64(liveHeap()) - int64(before)
	if len(unrefused) > 0 {
		t.Errorf("streams %v were not reset with FRAME_SIZE_ERROR", unrefused)
	}
	// The streams still open would hold streams*refs*3000 bytes = 48 MB.
	if kept > 16<<20 {
		t.Errorf("the server kept %d MB after %d bombed streams", kept>>20, streams)
	}
	if _, err := dial(t, addr).Publish(testCtx(t), &roomcastv1.PublishRequest{Room: "r"}); err != nil {
		t.Errorf("the server stopped serving: %v", err)
	}
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

	c := dial(t, addr)
	if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r"}); err != nil { // learns the limit
		t.Fatal(err)
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
