package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/client"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/faultproxy"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

func newPublisher(t testing.TB, ctx context.Context, c *client.Client) *client.Publisher {
	t.Helper()
	p, err := c.NewPublisher(ctx)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// roomOffset is a room's newest offset on srv.
func roomOffset(t testing.TB, srv *server.Server, room string) uint64 {
	t.Helper()
	h, err := srv.History(context.Background(), &roomcastv1.HistoryRequest{Room: room, Limit: 1, NewestFirst: true})
	if err != nil {
		t.Fatal(err)
	}
	return h.GetOffset()
}

// Many goroutines share one Publisher: every message gets its own offset,
// each goroutine's in the order it published them, with one epoch, and a
// subscriber receives them all.
func TestPublisherSharedByGoroutines(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "r")
	p := newPublisher(t, ctx, c)
	const goroutines, each = 8, 100
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		seen   = make(map[uint64]bool)
		epochs = make(map[string]bool)
	)
	for g := range goroutines {
		wg.Go(func() {
			var last uint64
			for i := range each {
				off, epoch, err := p.PublishText(ctx, "r", fmt.Sprintf("%d/%d", g, i))
				if err != nil {
					t.Error(err)
					return
				}
				if off <= last {
					t.Errorf("goroutine %d: offset %d after %d", g, off, last)
				}
				last = off
				mu.Lock()
				if seen[off] {
					t.Errorf("offset %d given twice", off)
				}
				seen[off], epochs[epoch] = true, true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != goroutines*each || len(epochs) != 1 {
		t.Fatalf("%d offsets in %d epochs, want %d in 1", len(seen), len(epochs), goroutines*each)
	}
	for want := uint64(1); want <= goroutines*each; want++ {
		if m := next(t, ctx, sub); m.GetOffset() != want {
			t.Fatalf("subscriber got offset %d, want %d", m.GetOffset(), want)
		}
	}
}

// A refused message fails alone, with the error Client.Publish would give,
// and the Publisher goes on.
func TestPublisherPerMessageErrors(t *testing.T) {
	_, addr := start(t, server.WithMaxMessageBytes(100), server.WithPublishRate(0.001, 3))
	ctx := testCtx(t)
	p := newPublisher(t, ctx, dial(t, addr))
	if _, _, err := p.PublishText(ctx, "bad room", "x"); !errors.Is(err, client.ErrInvalidArgument) || status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad room: %v", err)
	}
	if _, _, err := p.Publish(ctx, "r", make([]byte, 101)); !errors.Is(err, client.ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	for i := range 3 {
		if off, _, err := p.PublishText(ctx, "r", "x"); err != nil || off != uint64(i+1) {
			t.Fatalf("publish %d: %d, %v", i, off, err)
		}
	}
	_, _, err := p.PublishText(ctx, "r", "x")
	if wait, ok := client.RetryAfter(err); !errors.Is(err, client.ErrRateLimited) || !ok || wait <= 0 {
		t.Fatalf("past the rate: %v (retry after %v, %v)", err, wait, ok)
	}
	if _, _, err := p.PublishText(ctx, "r", "\xff"); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("invalid UTF-8: %v", err)
	}
}

// loseAnswers makes the server end a PublishStream with UNAVAILABLE instead
// of sending the answer to the first n messages, as if the connection broke
// after the server sequenced them.
func loseAnswers(n int32) (server.Option, *atomic.Int32) {
	var lost atomic.Int32
	return server.WithGRPCOptions(grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &losingStream{ServerStream: ss, lost: &lost, n: n})
	})), &lost
}

type losingStream struct {
	grpc.ServerStream
	lost *atomic.Int32
	n    int32
}

func (s *losingStream) SendMsg(m any) error {
	if _, ok := m.(*roomcastv1.PublishStreamResponse); ok && s.lost.Add(1) <= s.n {
		return status.Error(codes.Unavailable, "test: the answer was lost")
	}
	return s.ServerStream.SendMsg(m)
}

// A message whose answer is lost fails with ErrUnavailable without a key,
// though it was sequenced; with a key the Publisher sends it again on a new
// stream, and the server answers with the first offset, appending nothing.
func TestPublisherRetriesOnlyWithAKey(t *testing.T) {
	opt, lost := loseAnswers(2)
	srv, addr := start(t, opt)
	ctx := testCtx(t)
	p := newPublisher(t, ctx, dial(t, addr, fastBackoff))
	_, _, err := p.PublishText(ctx, "r", "no key")
	if !errors.Is(err, client.ErrUnavailable) || status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "may or may not") {
		t.Fatalf("answer lost without a key: %v, want ErrUnavailable", err)
	}
	if got := roomOffset(t, srv, "r"); got != 1 {
		t.Fatalf("room offset %d, want 1: the message was sequenced", got)
	}
	off, epoch, err := p.PublishText(ctx, "r", "with key", client.WithIdempotencyKey("k1"))
	if err != nil || off != 2 || epoch == "" {
		t.Fatalf("answer lost with a key: %d %q %v, want offset 2", off, epoch, err)
	}
	if lost.Load() != 3 {
		t.Fatalf("%d answers sent or lost, want 3: the keyed message was not sent again", lost.Load())
	}
	if got := roomOffset(t, srv, "r"); got != 2 {
		t.Fatalf("room offset %d, want 2: the retry appended again", got)
	}
}

// Client.Publish with a key sends the message again after UNAVAILABLE, and
// it is sequenced once; without a key it does not.
func TestPublishRetriesOnlyWithAKey(t *testing.T) {
	var calls atomic.Int32
	srv, addr := start(t, server.WithGRPCOptions(grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if calls.Add(1)%2 == 1 { // every other answer is lost
			return nil, status.Error(codes.Unavailable, "test: the answer was lost")
		}
		return resp, err
	})))
	ctx := testCtx(t)
	c := dial(t, addr, fastBackoff)
	if _, err := c.PublishText(ctx, "r", "no key"); !errors.Is(err, client.ErrUnavailable) || calls.Load() != 1 {
		t.Fatalf("without a key: %v after %d calls, want ErrUnavailable after 1", err, calls.Load())
	}
	calls.Store(0)
	off, err := c.PublishText(ctx, "r", "key", client.WithIdempotencyKey(client.NewIdempotencyKey()))
	if err != nil || off != 2 || calls.Load() != 2 {
		t.Fatalf("with a key: offset %d, %v after %d calls; want offset 2 after 2", off, err, calls.Load())
	}
	if got := roomOffset(t, srv, "r"); got != 2 {
		t.Fatalf("room offset %d, want 2", got)
	}
	calls.Store(0)
	c1 := dial(t, addr, fastBackoff, client.WithPublishAttempts(1))
	if _, err := c1.PublishText(ctx, "r", "key", client.WithIdempotencyKey("once")); !errors.Is(err, client.ErrUnavailable) || calls.Load() != 1 {
		t.Fatalf("with one attempt: %v after %d calls", err, calls.Load())
	}
}

// The Publisher reconnects after the connection breaks, and goes on.
func TestPublisherSurvivesConnectionLoss(t *testing.T) {
	srv, addr := start(t)
	proxy := faultproxy.Start(t, addr)
	ctx := testCtx(t)
	p := newPublisher(t, ctx, dial(t, proxy.Addr(), fastBackoff))
	for i := range 3 {
		off, _, err := p.PublishText(ctx, "r", fmt.Sprint(i), client.WithIdempotencyKey(client.NewIdempotencyKey()))
		if err != nil || off != uint64(i+1) {
			t.Fatalf("publish %d: %d, %v", i, off, err)
		}
		proxy.Sever()
	}
	if proxy.Accepted() < 3 {
		t.Fatalf("%d connections: the Publisher did not reconnect", proxy.Accepted())
	}
	if got := roomOffset(t, srv, "r"); got != 3 {
		t.Fatalf("room offset %d, want 3", got)
	}
}

// While the server cannot be reached, a publish without a key fails with
// ErrUnavailable once an attempt to reconnect failed (it was not sent); the
// Publisher keeps trying and goes on when the server is back.
func TestPublisherWhileTheServerIsDown(t *testing.T) {
	_, addr := start(t)
	proxy := faultproxy.Start(t, addr)
	ctx := testCtx(t)
	p := newPublisher(t, ctx, dial(t, proxy.Addr(), fastBackoff))
	if _, _, err := p.PublishText(ctx, "r", "1"); err != nil {
		t.Fatal(err)
	}
	proxy.Refuse()
	proxy.Sever()
	var err error
	for err == nil { // until the Publisher has seen the loss
		_, _, err = p.PublishText(ctx, "r", "x")
	}
	if !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("server down: %v, want ErrUnavailable", err)
	}
	proxy.Resume(addr)
	for {
		if _, _, err = p.PublishText(ctx, "r", "back"); err == nil {
			break
		}
		if !errors.Is(err, client.ErrUnavailable) {
			t.Fatalf("while the server comes back: %v", err)
		}
	}
}

// A credential the server refuses ends the Publisher: its calls fail with
// ErrUnauthenticated.
func TestPublisherEndsOnAPermanentError(t *testing.T) {
	addr := testjwt.StartServer(t)
	ctx := testCtx(t)
	p := newPublisher(t, ctx, dial(t, addr))
	for range 2 {
		if _, _, err := p.PublishText(ctx, "r", "x"); !errors.Is(err, client.ErrUnauthenticated) {
			t.Fatalf("without a credential: %v, want ErrUnauthenticated", err)
		}
	}
	tok := testjwt.Token(t, "svc", time.Now().Add(time.Hour), testjwt.Grants(t, "r", "", ""))
	p = newPublisher(t, ctx, dial(t, addr, client.WithBearerToken(tok)))
	if _, _, err := p.PublishText(ctx, "r", "x"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.PublishText(ctx, "s", "x"); !errors.Is(err, client.ErrPermissionDenied) {
		t.Fatalf("outside the grants: %v", err)
	}
	if _, _, err := p.PublishText(ctx, "r", "x"); err != nil {
		t.Fatalf("a refused message does not end the Publisher: %v", err)
	}
}

// After Close, or the client's, or the end of its context, the Publisher
// refuses to publish, saying why.
func TestPublisherEnds(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	p := newPublisher(t, ctx, c)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.PublishText(ctx, "r", "x"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	pctx, cancel := context.WithCancel(ctx)
	p = newPublisher(t, pctx, c)
	cancel()
	if _, _, err := p.PublishText(ctx, "r", "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("after the end of its context: %v", err)
	}
	c2, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	p = newPublisher(t, ctx, c2)
	c2.Close()
	if _, _, err := p.PublishText(ctx, "r", "x"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("after the client's Close: %v", err)
	}
	if _, err := c2.NewPublisher(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("NewPublisher after Close: %v", err)
	}
}

// Messages sent with PublishAsync from one goroutine are sequenced in that
// order, though their answers are awaited together.
func TestPublishAsyncKeepsOrder(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	p := newPublisher(t, ctx, dial(t, addr))
	calls := make([]*client.PublishCall, 1000)
	for i := range calls {
		calls[i] = p.PublishTextAsync(ctx, "r", fmt.Sprint(i))
	}
	bad := p.PublishTextAsync(ctx, "r", "\xff")
	for i, call := range calls {
		off, _, err := call.Wait(ctx)
		if err != nil || off != uint64(i+1) {
			t.Fatalf("message %d: offset %d, %v; want %d", i, off, err, i+1)
		}
		if again, _, _ := call.Wait(ctx); again != off {
			t.Fatalf("a second Wait: %d, want %d", again, off)
		}
	}
	if _, _, err := bad.Wait(ctx); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("invalid UTF-8: %v", err)
	}
}
