package server_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// A credential may hold only so many Subscribe streams open, over all its
// connections; another credential has its own count, and a stream that ends
// gives its place back.
func TestSubscribeStreamsAreLimitedPerCredential(t *testing.T) {
	addr := testjwt.StartServer(t, server.WithMaxStreamsPerCredential(2))
	ctx := testCtx(t)
	g := testjwt.Grants(t, "", ">", "")
	a := bearer(ctx, testjwt.Token(t, "a", time.Now().Add(time.Hour), g))
	b := bearer(ctx, testjwt.Token(t, "b", time.Now().Add(time.Hour), g))
	subscribe(t, a, dial(t, addr))
	second := subscribe(t, a, dial(t, addr))

	third, err := dial(t, addr).Subscribe(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := third.Recv(); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "2 Subscribe streams open") {
		t.Errorf("a third stream of two allowed: %v, want RESOURCE_EXHAUSTED", err)
	}
	subscribe(t, b, dial(t, addr))

	// The server ends second (its command is over the size limit), and so
	// has let its place go before the client hears of it.
	if err := second.stream.Send(infoJoin("big", "r", map[string]string{"k": strings.Repeat("v", 20<<10)})); err != nil {
		t.Fatal(err)
	}
	second.expectEnd(codes.ResourceExhausted)
	subscribe(t, a, dial(t, addr))
}
