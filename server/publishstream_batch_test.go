package server_test

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

func textItem(id, room, text string) *roomcastv1.PublishStreamItem {
	return &roomcastv1.PublishStreamItem{Id: id, Publish: &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: text}}}
}

// answer is one publish's answer, whether it came as a response or as one
// of a response's batch.
type answer struct {
	id   string
	ok   *roomcastv1.PublishResponse
	err  *roomcastv1.Error
	code codes.Code
}

// answers flattens a response into the answers of its request's publishes.
func answers(resp *roomcastv1.PublishStreamResponse) []answer {
	all := []answer{{id: resp.GetId(), ok: resp.GetOk(), err: resp.GetError(), code: codes.Code(resp.GetError().GetCode())}}
	for _, r := range resp.GetBatch() {
		all = append(all, answer{id: r.GetId(), ok: r.GetOk(), err: r.GetError(), code: codes.Code(r.GetError().GetCode())})
	}
	return all
}

// sendRecv sends req and returns the response to it.
func sendRecv(t testing.TB, stream publishStream, req *roomcastv1.PublishStreamRequest) *roomcastv1.PublishStreamResponse {
	t.Helper()
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// The stream's headers give the batch limits; a request with a batch is
// answered by one response whose batch answers the items in order, each
// failing alone with the code Publish gives (bad room, grants, rate, bad
// id, no publish) while the others are sequenced in order; a request
// without a batch is answered as before batches, without one.
func TestPublishStreamBatchAnsweredInOrder(t *testing.T) {
	addr := testjwt.StartServer(t, server.WithMaxMessageBytes(1000), server.WithPublishRate(0.001, 6))
	ctx := testCtx(t)
	c := dial(t, addr)
	writer := bearer(ctx, testjwt.Token(t, "writer", time.Now().Add(time.Hour), testjwt.Grants(t, "news.*", "news.*", "")))
	sub := subscribe(t, writer, c, "news.eu")
	stream := openPublishStream(t, writer, c)
	md, err := stream.Header()
	if err != nil {
		t.Fatal(err)
	}
	if got := md.Get("roomcast-publish-batch-items"); len(got) != 1 || got[0] != "256" {
		t.Fatalf("roomcast-publish-batch-items: %q, want 256", got)
	}
	if got := md.Get("roomcast-publish-batch-bytes"); len(got) != 1 || got[0] != strconv.Itoa(1000+1024) {
		t.Fatalf("roomcast-publish-batch-bytes: %q, want %d", got, 1000+1024)
	}

	resp := sendRecv(t, stream, textReq("alone", "news.eu", "0"))
	if resp.GetOk().GetOffset() != 1 || resp.GetBatch() != nil {
		t.Fatalf("a request without a batch: %v", resp)
	}

	req := textReq("a", "news.eu", "1")
	req.Batch = []*roomcastv1.PublishStreamItem{
		textItem("b", "news..eu", "bad room"),
		textItem("c", "news.eu", "2"),
		textItem("d", "sport.eu", "outside the grants"),
		textItem(strings.Repeat("i", 129), "news.eu", "bad id"),
		{Id: "f"}, // no publish
		textItem("g", "news.eu", "3"),
		textItem("h", "news.eu", "4"),
		textItem("i", "news.eu", "5"),
		textItem("j", "news.eu", "over the rate"), // the burst of 6 is spent
	}
	want := []struct {
		id     string
		code   codes.Code
		offset uint64
	}{
		{"a", codes.OK, 2}, {"b", codes.InvalidArgument, 0}, {"c", codes.OK, 3},
		{"d", codes.PermissionDenied, 0}, {"", codes.InvalidArgument, 0}, {"f", codes.InvalidArgument, 0},
		{"g", codes.OK, 4}, {"h", codes.OK, 5}, {"i", codes.OK, 6}, {"j", codes.ResourceExhausted, 0},
	}
	got := answers(sendRecv(t, stream, req))
	if len(got) != len(want) {
		t.Fatalf("%d answers, want %d", len(got), len(want))
	}
	for i, w := range want {
		a := got[i]
		if a.id != w.id || a.code != w.code || a.ok.GetOffset() != w.offset {
			t.Fatalf("answer %d: %+v, want id %q, %v, offset %d", i, a, w.id, w.code, w.offset)
		}
		if w.code == codes.OK && a.ok.GetEpoch() == "" || w.code != codes.OK && a.err.GetMessage() == "" {
			t.Fatalf("answer %d: %+v: an ok without an epoch or an error without a message", i, a)
		}
	}
	if got[9].err.GetRetryAfter().AsDuration() <= 0 {
		t.Fatalf("over the rate: %+v, want a retry_after", got[9])
	}
	for i := range 6 {
		if m := sub.next(); m.GetText() != fmt.Sprint(i) {
			t.Fatalf("subscriber got %q, want %d", m.GetText(), i)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("after the last answer: %v, want the end with OK", err)
	}
}

// An idempotency key repeated in a batch, or in a later batch, returns the
// first publish's offset and appends nothing.
func TestPublishStreamBatchIdempotencyKeys(t *testing.T) {
	srv, addr := start(t)
	ctx := testCtx(t)
	stream := openPublishStream(t, ctx, dial(t, addr))
	keyed := func(id, key string) *roomcastv1.PublishStreamItem {
		it := textItem(id, "r", id)
		it.Publish.IdempotencyKey = key
		return it
	}
	req := &roomcastv1.PublishStreamRequest{Id: "1", Publish: keyed("1", "k1").Publish}
	req.Batch = []*roomcastv1.PublishStreamItem{keyed("2", "k2"), keyed("3", "k1"), keyed("4", ""), keyed("5", "k2")}
	var offsets []uint64
	for _, a := range answers(sendRecv(t, stream, req)) {
		offsets = append(offsets, a.ok.GetOffset())
	}
	if fmt.Sprint(offsets) != "[1 2 1 3 2]" {
		t.Fatalf("offsets %v, want [1 2 1 3 2]", offsets)
	}
	req = &roomcastv1.PublishStreamRequest{Id: "6", Publish: keyed("6", "k3").Publish}
	req.Batch = []*roomcastv1.PublishStreamItem{keyed("7", "k1"), keyed("8", "k3")}
	offsets = offsets[:0]
	for _, a := range answers(sendRecv(t, stream, req)) {
		offsets = append(offsets, a.ok.GetOffset())
	}
	if fmt.Sprint(offsets) != "[4 1 4]" {
		t.Fatalf("offsets across batches %v, want [4 1 4]", offsets)
	}
	if st := srv.Broker().Stats(); st.Deduplicated != 4 || st.Keys != 3 {
		t.Fatalf("broker stats %+v, want 4 publishes deduplicated and 3 keys", st)
	}
}

// A request over the batch limits ends the stream with its code, after the
// answers to the requests before it: too many publishes or headers is
// INVALID_ARGUMENT, too many bytes RESOURCE_EXHAUSTED.
func TestPublishStreamBatchLimits(t *testing.T) {
	_, addr := start(t, server.WithMaxMessageBytes(4000))
	ctx := testCtx(t)
	c := dial(t, addr)
	batchOf := func(n int, size int) *roomcastv1.PublishStreamRequest {
		req := textReq("0", "r", "x")
		for i := 1; i < n; i++ {
			req.Batch = append(req.Batch, textItem(fmt.Sprint(i), "r", strings.Repeat("x", size)))
		}
		return req
	}
	manyHeaders := batchOf(3, 1)
	manyHeaders.Batch[1].Publish.Headers = map[string]string{}
	for i := range 65 {
		manyHeaders.Batch[1].Publish.Headers[fmt.Sprint("h", i)] = "v"
	}
	for _, tc := range []struct {
		name string
		req  *roomcastv1.PublishStreamRequest
		code codes.Code
	}{
		{"257 publishes", batchOf(257, 1), codes.InvalidArgument},
		{"an item with too many headers", manyHeaders, codes.InvalidArgument},
		{"more bytes than one message may have", batchOf(10, 600), codes.ResourceExhausted},
	} {
		stream := openPublishStream(t, ctx, c)
		if got := answers(sendRecv(t, stream, batchOf(256, 1))); len(got) != 256 || got[255].ok == nil {
			t.Fatalf("%s: a batch at the limit: %d answers, the last %+v", tc.name, len(got), got[len(got)-1])
		}
		if got := answers(sendRecv(t, stream, batchOf(5, 800))); len(got) != 5 || got[4].ok == nil {
			t.Fatalf("%s: a batch just under the byte limit: %+v", tc.name, got)
		}
		if err := stream.Send(tc.req); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); status.Code(err) != tc.code {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}
}
