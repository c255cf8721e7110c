package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
)

// publishWithEntries encodes a PublishRequest for room with n header
// entries, keys repeating every distinct of them, as a client could send
// it: what it decodes to is checked only after decoding.
func publishWithEntries(room string, n, distinct int) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, room)
	for i := range n {
		var entry []byte
		entry = protowire.AppendTag(entry, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, fmt.Sprint("k", i%distinct))
		entry = protowire.AppendTag(entry, 2, protowire.BytesType)
		entry = protowire.AppendString(entry, "v")
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, entry)
	}
	return b
}

// Map entries are counted on the request's bytes, before it is decoded:
// 87,000 headers cost 83.5 ms to decode, however few distinct keys they
// hold.
func TestPublishHeadersAreCountedBeforeDecoding(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	conn := servertest.Dial(t, addr)
	invoke := func(req []byte) error {
		return conn.Invoke(ctx, roomcastv1.BrokerService_Publish_FullMethodName, req, new([]byte), grpc.ForceCodecV2(rawCodec{}))
	}
	for _, tc := range []struct {
		name string
		req  []byte
		code codes.Code
		says string
	}{
		// Invalid UTF-8 in the room: refused for its entries, so never decoded.
		{"100 entries, undecodable", publishWithEntries("caf\xff", 100, 100), codes.InvalidArgument, "100 headers; the limit is 64"},
		{"65 entries, 3 keys", publishWithEntries("r", 65, 3), codes.InvalidArgument, "65 headers; the limit is 64"},
		{"87,000 entries", publishWithEntries("r", 87_000, 1000), codes.InvalidArgument, "87000 headers"},
		{"64 entries", publishWithEntries("r", 64, 64), codes.OK, ""},
	} {
		err := invoke(tc.req)
		if st := status.Convert(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.says) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.code, tc.says)
		}
	}
}

// Each RPC's request has a size limit that fits it; past it the call, or
// for a Subscribe command the stream, ends with RESOURCE_EXHAUSTED. A join
// with more presence info entries than allowed ends the stream: it is
// refused before it is decoded, so before its command id is known.
func TestRequestsAreLimitedPerRPCBeforeDecoding(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	long := strings.Repeat("r", 5<<10)
	if _, err := c.History(ctx, &roomcastv1.HistoryRequest{Room: long}); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "the limit is 4096") {
		t.Errorf("a 5 KiB History request: %v, want RESOURCE_EXHAUSTED", err)
	}
	if _, err := c.Presence(ctx, &roomcastv1.PresenceRequest{Room: long}); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "the limit is 4096") {
		t.Errorf("a 5 KiB Presence request: %v, want RESOURCE_EXHAUSTED", err)
	}

	info := func(entries, size int) map[string]string {
		m := make(map[string]string, entries)
		for i := range entries {
			m[fmt.Sprint("k", i)] = strings.Repeat("v", size)
		}
		return m
	}
	for _, tc := range []struct {
		name string
		info map[string]string
		code codes.Code
		says string
	}{
		{"a 17 KiB command", info(1, 17<<10), codes.ResourceExhausted, "the limit is 16384"},
		{"17 info entries", info(17, 1), codes.InvalidArgument, "presence info has 17 entries; the limit is 16"},
	} {
		// A stream of its own, whose end is waited for no longer than it
		// takes to come.
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		sub := subscribe(t, sctx, c)
		if err := sub.stream.Send(infoJoin("j", "room", tc.info)); err != nil {
			t.Fatal(err)
		}
		_, err := sub.stream.Recv()
		if st := status.Convert(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.says) {
			t.Errorf("%s: stream got %v, want it to end with %v saying %q", tc.name, err, tc.code, tc.says)
		}
		cancel()
	}

	// Within the limits all is as before: the info is validated once decoded.
	sub := subscribe(t, ctx, c)
	if rep := sub.command(infoJoin("big", "room", info(16, 100))); rep.GetError().GetCode() != int32(codes.InvalidArgument) || !strings.Contains(rep.GetError().GetMessage(), "the limit is 1024") {
		t.Errorf("16 entries of 1.6 KiB in all: %v, want an INVALID_ARGUMENT reply", rep)
	}
	if rep := sub.command(infoJoin("ok", "room", info(16, 10))); rep.GetError() != nil {
		t.Errorf("16 small entries: %v", rep)
	}
}

func infoJoin(id, room string, info map[string]string) *roomcastv1.SubscribeRequest {
	return &roomcastv1.SubscribeRequest{Id: id, Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: room, Presence: true, Info: info}}}
}

// A PublishStream's publishes are counted before decoding too: one with
// more headers than allowed ends the stream with INVALID_ARGUMENT, as it
// is refused before its id is known, and the publishes before it are
// answered first.
func TestPublishStreamHeadersAreCountedBeforeDecoding(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	stream := openPublishStream(t, ctx, dial(t, addr))
	headers := make(map[string]string, 65)
	for i := range 65 {
		headers[fmt.Sprint("k", i)] = "v"
	}
	bad := textReq("bad", "r", "x")
	bad.Publish.Headers = headers
	for _, req := range []*roomcastv1.PublishStreamRequest{textReq("ok", "r", "x"), bad} {
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	if resp, err := stream.Recv(); err != nil || resp.GetId() != "ok" || resp.GetOk() == nil {
		t.Fatalf("the publish before: %v, %v", resp, err)
	}
	resp, err := stream.Recv()
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "65 headers; the limit is 64") {
		t.Errorf("a publish of 65 headers: answer %v, stream %v; want the stream to end with INVALID_ARGUMENT", resp, err)
	}
}
