package server_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

type publishStream = grpc.BidiStreamingClient[roomcastv1.PublishStreamRequest, roomcastv1.PublishStreamResponse]

func openPublishStream(t testing.TB, ctx context.Context, c roomcastv1.BrokerServiceClient) publishStream {
	t.Helper()
	stream, err := c.PublishStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

func textReq(id, room, text string) *roomcastv1.PublishStreamRequest {
	return &roomcastv1.PublishStreamRequest{Id: id, Publish: &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: text}}}
}

// Publishes sent back to back, good and bad mixed, are answered in order,
// each with its id; the bad ones fail alone, with the code Publish gives,
// and the stream stays up until the publisher closes its side, when it ends
// with OK. A subscriber sees the good ones in the same order.
func TestPublishStreamAnswersInOrder(t *testing.T) {
	_, addr := start(t, server.WithMaxMessageBytes(1000))
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "r")
	stream := openPublishStream(t, ctx, c)
	const n = 1000 // far more than the window: the publisher never waits for an answer
	want := make([]codes.Code, n)
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			req := textReq(fmt.Sprint("p", i), "r", fmt.Sprint(i))
			switch i % 10 {
			case 3:
				req.Publish.Room = "bad room"
			case 6:
				req.Publish.Payload = &roomcastv1.PublishRequest_Data{Data: make([]byte, 1001)}
			case 9:
				req.Publish = nil
			}
			if err := stream.Send(req); err != nil {
				sent <- err
				return
			}
		}
		sent <- stream.CloseSend()
	}()
	for i := range n {
		switch i % 10 {
		case 3, 9:
			want[i] = codes.InvalidArgument
		case 6:
			want[i] = codes.ResourceExhausted
		}
	}
	var offset uint64
	for i := range n {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if resp.GetId() != fmt.Sprint("p", i) {
			t.Fatalf("answer %d has id %q", i, resp.GetId())
		}
		if code := codes.Code(resp.GetError().GetCode()); code != want[i] {
			t.Fatalf("answer %d: %v, want %v", i, resp, want[i])
		}
		if want[i] == codes.OK {
			offset++
			if resp.GetOk().GetOffset() != offset || resp.GetOk().GetEpoch() == "" {
				t.Fatalf("answer %d: %v, want offset %d and an epoch", i, resp, offset)
			}
		} else if resp.GetError().GetMessage() == "" {
			t.Fatalf("answer %d: an error without a message", i)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("after the last answer: %v, want the end with OK", err)
	}
	for i := range n {
		if want[i] != codes.OK {
			continue
		}
		if m := sub.next(); m.GetText() != fmt.Sprint(i) {
			t.Fatalf("subscriber got %q, want %d", m.GetText(), i)
		}
	}
}

// Every check of Publish applies to each publish of a stream, with the same
// code: validation, size, grants, session ownership and the publish rate,
// whose delay comes as retry_after.
func TestPublishStreamChecksAsPublishDoes(t *testing.T) {
	addr := testjwt.StartServer(t, server.WithMaxMessageBytes(100), server.WithPublishRate(0.001, 13))
	ctx := testCtx(t)
	c := dial(t, addr)
	g := testjwt.Grants(t, "news.*", "news.*", "")
	writer := bearer(ctx, testjwt.Token(t, "writer", time.Now().Add(time.Hour), g))
	other := bearer(ctx, testjwt.Token(t, "other", time.Now().Add(time.Hour), g))
	otherSession := subscribe(t, other, c, "news.eu").session
	for _, tc := range []struct {
		name string
		req  *roomcastv1.PublishRequest
		code codes.Code
	}{
		{"bad room", &roomcastv1.PublishRequest{Room: "news..eu"}, codes.InvalidArgument},
		{"bad header", &roomcastv1.PublishRequest{Room: "news.eu", Headers: map[string]string{"a b": "c"}}, codes.InvalidArgument},
		{"long key", &roomcastv1.PublishRequest{Room: "news.eu", IdempotencyKey: strings.Repeat("k", 129)}, codes.InvalidArgument},
		{"too large", &roomcastv1.PublishRequest{Room: "news.eu", Payload: &roomcastv1.PublishRequest_Text{Text: strings.Repeat("x", 101)}}, codes.ResourceExhausted},
		{"outside the grants", &roomcastv1.PublishRequest{Room: "sport.eu"}, codes.PermissionDenied},
		{"another subject's session", &roomcastv1.PublishRequest{Room: "news.eu", SessionId: otherSession}, codes.PermissionDenied},
		{"granted", &roomcastv1.PublishRequest{Room: "news.eu"}, codes.OK},
	} {
		_, err := c.Publish(writer, tc.req)
		if status.Code(err) != tc.code {
			t.Fatalf("%s: Publish: %v, want %v", tc.name, err, tc.code)
		}
		stream := openPublishStream(t, writer, c)
		if err := stream.Send(&roomcastv1.PublishStreamRequest{Id: tc.name, Publish: tc.req}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if code := codes.Code(resp.GetError().GetCode()); code != tc.code || resp.GetId() != tc.name {
			t.Fatalf("%s: stream answered %v, want %v", tc.name, resp, tc.code)
		}
		stream.CloseSend()
	}
	// The 7 unary calls spent 7 of the 13 of the burst (the tap takes a
	// call's token before its request is read), and the stream's granted
	// publish and the one naming another subject's session 2 more (the rate
	// is checked after validation and the grants, before the session, which
	// may cost a round trip to the engine): the stream's share the unary
	// calls' bucket, and 4 are left.
	stream := openPublishStream(t, writer, c)
	for i := range 5 {
		if err := stream.Send(textReq(fmt.Sprint(i), "news.eu", "x")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case i < 4 && resp.GetOk() == nil:
			t.Fatalf("publish %d within the burst: %v", i, resp)
		case i == 4 && (codes.Code(resp.GetError().GetCode()) != codes.ResourceExhausted || resp.GetError().GetRetryAfter().AsDuration() <= 0):
			t.Fatalf("publish past the burst: %v, want RESOURCE_EXHAUSTED with retry_after", resp)
		}
	}
	// The stream is still up.
	if err := stream.Send(textReq("again", "sport.eu", "x")); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || codes.Code(resp.GetError().GetCode()) != codes.PermissionDenied {
		t.Fatalf("after a rate-limited publish: %v, %v", resp, err)
	}
}

// A request without a valid id or without a publish is answered with
// INVALID_ARGUMENT, the first with an empty id.
func TestPublishStreamMalformedRequests(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	stream := openPublishStream(t, ctx, dial(t, addr))
	for _, tc := range []struct {
		req    *roomcastv1.PublishStreamRequest
		wantID string
	}{
		{&roomcastv1.PublishStreamRequest{Id: strings.Repeat("i", 129), Publish: &roomcastv1.PublishRequest{Room: "r"}}, ""},
		{&roomcastv1.PublishStreamRequest{Id: "empty"}, "empty"},
	} {
		if err := stream.Send(tc.req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if codes.Code(resp.GetError().GetCode()) != codes.InvalidArgument || resp.GetId() != tc.wantID {
			t.Fatalf("answer %v, want INVALID_ARGUMENT with id %q", resp, tc.wantID)
		}
	}
}

// Without a credential the stream ends with UNAUTHENTICATED; when its
// credential expires, it ends with UNAUTHENTICATED too.
func TestPublishStreamCredentials(t *testing.T) {
	addr := testjwt.StartServer(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	stream := openPublishStream(t, ctx, c)
	if _, err := stream.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("without a credential: %v, want UNAUTHENTICATED", err)
	}
	tok := testjwt.Token(t, "svc", time.Now().Add(2*time.Second), testjwt.Grants(t, "r", "", ""))
	stream = openPublishStream(t, bearer(ctx, tok), c)
	if err := stream.Send(textReq("1", "r", "x")); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.GetOk() == nil {
		t.Fatalf("before the expiry: %v, %v", resp, err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("at the expiry: %v, want UNAUTHENTICATED", err)
	}
}

// A shutdown ends the stream with UNAVAILABLE, and every publish that was
// sequenced was answered first: the room's offset is the number of
// successful answers.
func TestPublishStreamDrainAnswersWhatItSequenced(t *testing.T) {
	srv, addr := start(t)
	ctx := testCtx(t)
	stream := openPublishStream(t, ctx, dial(t, addr))
	go func() { // until the stream ends
		for i := 0; ; i++ {
			if stream.Send(textReq(fmt.Sprint(i), "r", "x")) != nil {
				return
			}
		}
	}()
	var ok uint64
	for ; ok < 100; ok++ { // the stream is busy
		if resp, err := stream.Recv(); err != nil || resp.GetOk().GetOffset() != ok+1 {
			t.Fatalf("answer %d: %v, %v", ok, resp, err)
		}
	}
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	var err error
	for {
		var resp *roomcastv1.PublishStreamResponse
		if resp, err = stream.Recv(); err != nil {
			break
		}
		if resp.GetOk().GetOffset() != ok+1 {
			t.Fatalf("answer %d: %v", ok, resp)
		}
		ok++
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("stream ended with %v, want UNAVAILABLE", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := srv.Broker().Stats().Published; n != ok {
		t.Fatalf("%d publishes were sequenced, but %d were answered: an unanswered publish was sequenced", n, ok)
	}
}

// A publish with an idempotency key that was already used returns the
// first one's offset and epoch, on a stream as on a call; an engine that
// cannot honour keys answers UNIMPLEMENTED.
func TestPublishIdempotencyKey(t *testing.T) {
	srv, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	req := &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Text{Text: "once"}, IdempotencyKey: "k-1"}
	first, err := c.Publish(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Publish(ctx, req)
	if err != nil || again.GetOffset() != first.GetOffset() || again.GetEpoch() != first.GetEpoch() {
		t.Fatalf("retry: %v, %v; want %v", again, err, first)
	}
	stream := openPublishStream(t, ctx, c)
	for _, r := range []*roomcastv1.PublishRequest{req, {Room: "r", IdempotencyKey: "k-2"}} {
		if err := stream.Send(&roomcastv1.PublishStreamRequest{Id: r.GetIdempotencyKey(), Publish: r}); err != nil {
			t.Fatal(err)
		}
	}
	if resp, err := stream.Recv(); err != nil || resp.GetOk().GetOffset() != first.GetOffset() {
		t.Fatalf("retry on a stream: %v, %v; want offset %d", resp, err, first.GetOffset())
	}
	if resp, err := stream.Recv(); err != nil || resp.GetOk().GetOffset() != first.GetOffset()+1 {
		t.Fatalf("a new key: %v, %v; want offset %d", resp, err, first.GetOffset()+1)
	}
	if st := srv.Broker().Stats(); st.Deduplicated != 2 || st.Keys != 2 {
		t.Fatalf("broker stats %+v, want 2 publishes deduplicated and 2 keys", st)
	}

	b, err := broker.New(broker.WithEngine(func(broker.EngineConfig) (broker.Engine, error) { return publishOnlyEngine{}, nil }))
	if err != nil {
		t.Fatal(err)
	}
	_, addr = start(t, server.WithBroker(b))
	_, err = dial(t, addr).Publish(ctx, req)
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("a key with an engine that cannot keep it: %v, want UNIMPLEMENTED", err)
	}
}

// publishOnlyEngine sequences every publish at offset 1, and does nothing
// else.
type publishOnlyEngine struct{ broker.Engine }

func (publishOnlyEngine) Publish(context.Context, string, []byte, string) (uint64, string, error) {
	return 1, "E", nil
}

func (publishOnlyEngine) Ping(context.Context) error { return nil }

func (publishOnlyEngine) Close() error { return nil }

// A publish stream whose API key is removed from the server's keys ends
// with UNAUTHENTICATED at its next publish, which is not sequenced; one
// whose key got other grants ends with UNAVAILABLE; a kept key's goes on.
func TestPublishStreamEndsWhenItsKeyIsRevoked(t *testing.T) {
	g := testjwt.Grants(t, "r", "r", "")
	keptKey, kept := apiKey(t, "kept", g)
	goneKey, gone := apiKey(t, "gone", g)
	regrantedKey, regranted := apiKey(t, "regranted", g)
	srv, addr, a := startWithKeys(t, []auth.APIKeyEntry{kept, gone, regranted})
	ctx := testCtx(t)
	c := dial(t, addr)
	streams := map[string]publishStream{}
	for name, key := range map[string]string{"kept": keptKey, "gone": goneKey, "regranted": regrantedKey} {
		streams[name] = openPublishStream(t, bearer(ctx, key), c)
		if err := streams[name].Send(textReq("before", "r", "x")); err != nil {
			t.Fatal(err)
		}
		if resp, err := streams[name].Recv(); err != nil || resp.GetOk() == nil {
			t.Fatalf("%s before the change: %v, %v", name, resp, err)
		}
	}
	regranted.Grants = testjwt.Grants(t, "r", "r,other", "")
	keys, err := auth.NewAPIKeyStore(kept, regranted)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Update(auth.WithAPIKeys(keys)); err != nil {
		t.Fatal(err)
	}
	before := srv.Broker().Stats().Published
	for name, want := range map[string]codes.Code{"kept": codes.OK, "gone": codes.Unauthenticated, "regranted": codes.Unavailable} {
		if err := streams[name].Send(textReq("after", "r", "x")); err != nil {
			t.Fatal(err)
		}
		resp, err := streams[name].Recv()
		if status.Code(err) != want || (want == codes.OK && resp.GetOk() == nil) {
			t.Fatalf("%s after the change: %v, %v; want %v", name, resp, err, want)
		}
	}
	if got := srv.Broker().Stats().Published - before; got != 1 {
		t.Fatalf("%d publishes sequenced after the change, want the kept key's 1", got)
	}
}
