package client_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/roomcast/roomcast/client"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// answerCount counts, on the server, the responses of PublishStreams and
// the answers they carry. hideBatching makes the server look as one that
// predates batches: it does not send the headers that announce them.
type answerCount struct {
	responses, answers atomic.Int64
	hideBatching       bool
}

func (a *answerCount) option() server.Option {
	return server.WithGRPCOptions(grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &countingStream{ServerStream: ss, a: a})
	}))
}

type countingStream struct {
	grpc.ServerStream
	a *answerCount
}

func (s *countingStream) SendMsg(m any) error {
	if resp, ok := m.(*roomcastv1.PublishStreamResponse); ok {
		s.a.responses.Add(1)
		s.a.answers.Add(int64(1 + len(resp.GetBatch())))
	}
	return s.ServerStream.SendMsg(m)
}

func (s *countingStream) SendHeader(md metadata.MD) error {
	if s.a.hideBatching {
		return nil // the headers go with the first response, without these
	}
	return s.ServerStream.SendHeader(md)
}

// publishInOrder publishes n messages from one goroutine with PublishAsync
// and checks that they were sequenced in that order.
func publishInOrder(t *testing.T, p *client.Publisher, n int) {
	t.Helper()
	ctx := testCtx(t)
	calls := make(chan *client.PublishCall, client.DefaultMaxInFlight)
	go func() {
		defer close(calls)
		for i := range n {
			calls <- p.PublishTextAsync(ctx, "r", strconv.Itoa(i))
		}
	}()
	want := uint64(1)
	for call := range calls {
		off, _, err := call.Wait(ctx)
		if err != nil || off != want {
			t.Fatalf("message %d: offset %d, %v", want-1, off, err)
		}
		want++
	}
}

// Under load, the Publisher sends what is queued as one request with a
// batch: the server answers far fewer requests than messages, and the
// messages are sequenced in the order published, across batches.
func TestPublisherBatchesUnderLoad(t *testing.T) {
	var count answerCount
	_, addr := start(t, count.option())
	ctx := testCtx(t)
	p := newPublisher(t, ctx, dial(t, addr))
	const n = 5000
	publishInOrder(t, p, n)
	responses, answers := count.responses.Load(), count.answers.Load()
	t.Logf("%d messages in %d requests", answers, responses)
	if answers != n || responses >= n {
		t.Fatalf("%d messages in %d requests: want %d in fewer requests", answers, responses, n)
	}
	// A lone message goes out at once, alone.
	before := count.responses.Load()
	if off, _, err := p.PublishText(ctx, "r", "alone"); err != nil || off != n+1 {
		t.Fatalf("a lone message: %d, %v", off, err)
	}
	if got := count.responses.Load() - before; got != 1 {
		t.Fatalf("a lone message took %d requests", got)
	}
}

// A server that does not announce batches gets one message per request.
func TestPublisherWithoutBatchesOnTheServer(t *testing.T) {
	count := answerCount{hideBatching: true}
	_, addr := start(t, count.option())
	p := newPublisher(t, testCtx(t), dial(t, addr))
	const n = 2000
	publishInOrder(t, p, n)
	if responses, answers := count.responses.Load(), count.answers.Load(); responses != n || answers != n {
		t.Fatalf("%d messages in %d requests, want %d in as many", answers, responses, n)
	}
}

// The messages of many goroutines sharing a Publisher travel in batches,
// and each goroutine's are sequenced in the order it published them.
func TestPublisherBatchesConcurrentCalls(t *testing.T) {
	var count answerCount
	_, addr := start(t, count.option())
	ctx := testCtx(t)
	p := newPublisher(t, ctx, dial(t, addr))
	const goroutines, each = 64, 50
	increasingOffsets(t, goroutines, each, func(g, i int) (uint64, bool, error) {
		off, _, err := p.PublishText(ctx, "r", fmt.Sprint(g, "/", i))
		return off, true, err
	})
	responses, answers := count.responses.Load(), count.answers.Load()
	t.Logf("%d messages in %d requests", answers, responses)
	if answers != goroutines*each || responses >= answers {
		t.Fatalf("%d messages in %d requests: want %d in fewer requests", answers, responses, goroutines*each)
	}
}

// A refusal is a message a Publisher must refuse alone.
type refusal struct {
	publish func(ctx context.Context, p *client.Publisher) *client.PublishCall
	want    error  // what it fails with
	what    string // what is wrong with it, for the failure message
}

// publishWithRefusals publishes n messages with PublishAsync, message i
// being refusals[i%every] where there is one and otherwise a text message
// to room "r", then checks, in order, that each refusal failed with its
// error and that the others were sequenced in the order published.
func publishWithRefusals(t *testing.T, ctx context.Context, p *client.Publisher, n, every int, refusals map[int]refusal) {
	t.Helper()
	calls := make([]*client.PublishCall, n)
	for i := range n {
		if r, ok := refusals[i%every]; ok {
			calls[i] = r.publish(ctx, p)
		} else {
			calls[i] = p.PublishTextAsync(ctx, "r", strconv.Itoa(i))
		}
	}
	want := uint64(1)
	for i, call := range calls {
		off, _, err := call.Wait(ctx)
		if r, ok := refusals[i%every]; ok {
			if !errors.Is(err, r.want) {
				t.Fatalf("message %d%s: %v", i, r.what, err)
			}
			continue
		}
		if err != nil || off != want {
			t.Fatalf("message %d: offset %d, %v; want %d", i, off, err, want)
		}
		want++
	}
}

// increasingOffsets calls publish(g, i) for each i below each on
// goroutines goroutines g, and fails t with the first error or the first
// offset that is not above the last its goroutine was answered. publish
// says whether its message has an offset to check (ok): one it abandoned
// has none.
func increasingOffsets(t *testing.T, goroutines, each int, publish func(g, i int) (off uint64, ok bool, err error)) {
	t.Helper()
	errs := make(chan error, goroutines)
	for g := range goroutines {
		go func() {
			var last uint64
			for i := range each {
				off, ok, err := publish(g, i)
				if err == nil && ok && off <= last {
					err = fmt.Errorf("goroutine %d: offset %d after %d", g, off, last)
				}
				if err != nil {
					errs <- err
					return
				}
				if ok {
					last = off
				}
			}
			errs <- nil
		}()
	}
	for range goroutines {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// Refused messages in the middle of batches fail alone, each with its own
// error, and the others are sequenced in the order published.
func TestPublisherBatchedErrors(t *testing.T) {
	var count answerCount
	_, addr := start(t, count.option(), server.WithMaxMessageBytes(100))
	ctx := testCtx(t)
	p := newPublisher(t, ctx, dial(t, addr))
	const n = 3000
	publishWithRefusals(t, ctx, p, n, 7, map[int]refusal{
		3: {func(ctx context.Context, p *client.Publisher) *client.PublishCall {
			return p.PublishTextAsync(ctx, "bad room", "x")
		}, client.ErrInvalidArgument, " to a bad room"},
		5: {func(ctx context.Context, p *client.Publisher) *client.PublishCall {
			return p.PublishAsync(ctx, "r", make([]byte, 101))
		}, client.ErrTooLarge, ", too large"},
	})
	if responses := count.responses.Load(); responses >= n {
		t.Fatalf("%d messages in %d requests: want fewer requests", n, responses)
	}
}

// A message whose room, header or key is not valid UTF-8 cannot be
// encoded: it fails alone with InvalidArgument, rather than ending the
// stream and every message batched with it.
func TestPublisherRefusesInvalidUTF8Alone(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	p := newPublisher(t, ctx, dial(t, addr))
	notUTF8 := func(publish func(ctx context.Context, p *client.Publisher) *client.PublishCall) refusal {
		return refusal{publish, client.ErrInvalidArgument, ", not UTF-8"}
	}
	publishWithRefusals(t, ctx, p, 300, 50, map[int]refusal{
		10: notUTF8(func(ctx context.Context, p *client.Publisher) *client.PublishCall {
			return p.PublishTextAsync(ctx, "r\xff", "x")
		}),
		20: notUTF8(func(ctx context.Context, p *client.Publisher) *client.PublishCall {
			return p.PublishTextAsync(ctx, "r", "x", client.WithHeaders(map[string]string{"k": "\xff"}))
		}),
		30: notUTF8(func(ctx context.Context, p *client.Publisher) *client.PublishCall {
			return p.PublishTextAsync(ctx, "r", "x", client.WithIdempotencyKey("\xff"))
		}),
	})
}
