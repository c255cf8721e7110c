package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/vtcodec"
)

// methodHandler is desc's handler of method.
func methodHandler(t *testing.T, desc *grpc.ServiceDesc, method string) grpc.MethodHandler {
	t.Helper()
	for _, m := range desc.Methods {
		if m.MethodName == method {
			return m.Handler
		}
	}
	t.Fatalf("no method %s", method)
	return nil
}

// A unary Publish served by publishMethod, its answer encoded by the codec,
// costs three allocations fewer than through the generated handler: the
// call's UnaryServerInfo and handler closure, which the Server makes once,
// and the PublishResponse, whose encoding is one allocation either way
// (the codec's for a message of up to 64 bytes; it was two, and this four
// fewer, before the codec's was one).
func TestUnaryPublishAllocatesThreeFewer(t *testing.T) {
	s := quietServer(t)
	ctx, dec := loopbackPublish()
	var infos []*grpc.UnaryServerInfo
	pass := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		infos = append(infos[:0], info)
		return handler(ctx, req)
	}
	generated := roomcastv1.BrokerService_ServiceDesc
	checkRequests(&generated)
	c := newServerCodec(s.cfg.requestLimits(), nil)
	allocs := func(h grpc.MethodHandler) float64 {
		return testing.AllocsPerRun(200, func() {
			resp, err := h(s, ctx, dec, pass)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Marshal(resp); err != nil {
				t.Fatal(err)
			}
		})
	}
	old := allocs(methodHandler(t, &generated, "Publish"))
	got := allocs(methodHandler(t, serviceDesc(), "Publish"))
	if got > old-3 {
		t.Errorf("%v allocations per Publish and its encoding, %v through the generated handler: want at least 3 fewer", got, old)
	}
	t.Logf("%v allocations per Publish and its encoding, %v through the generated handler", got, old)
	if info := infos[0]; info.FullMethod != roomcastv1.BrokerService_Publish_FullMethodName || info.Server != s {
		t.Errorf("interceptors were handed %+v, want Publish's full method and the server", *info)
	}
}

// publishMethod's encoded answer is the bytes the codec makes of the
// PublishResponse it stands for; an epoch too long to fit, or not valid
// UTF-8, is answered with a PublishResponse, which the codec encodes or
// refuses as proto does.
func TestPublishReplyEncodesAsPublishResponse(t *testing.T) {
	c := newCodec()
	encode := func(v any) []byte {
		t.Helper()
		bufs, err := c.Marshal(v)
		if err != nil {
			t.Fatalf("encoding %T: %v", v, err)
		}
		return bufs.Materialize()
	}
	for _, tc := range []struct {
		off   uint64
		epoch string
	}{
		{0, ""},
		{1, "ABCDEFGHIJKLM"},
		{^uint64(0), strings.Repeat("E", 35)}, // the longest that fits
	} {
		reply := newPublishReply(tc.off, tc.epoch)
		if _, ok := reply.(*frame); !ok {
			t.Errorf("offset %d epoch %q: answered with a %T, want an encoded frame", tc.off, tc.epoch, reply)
			continue
		}
		want := encode(&roomcastv1.PublishResponse{Offset: tc.off, Epoch: tc.epoch})
		if got := encode(reply); !bytes.Equal(got, want) {
			t.Errorf("offset %d epoch %q: encoded %x, want %x", tc.off, tc.epoch, got, want)
		}
		var back roomcastv1.PublishResponse
		if err := vtcodec.Unmarshal(encode(reply), &back); err != nil || back.GetOffset() != tc.off || back.GetEpoch() != tc.epoch {
			t.Errorf("offset %d epoch %q: decoded %v, %v", tc.off, tc.epoch, &back, err)
		}
	}
	long := newPublishReply(^uint64(0), strings.Repeat("E", 36))
	if r, ok := long.(*roomcastv1.PublishResponse); !ok || r.GetEpoch() != strings.Repeat("E", 36) {
		t.Errorf("an epoch of 36 bytes: answered with %#v, want a PublishResponse", long)
	}
	bad := newPublishReply(1, "\xff")
	if _, ok := bad.(*roomcastv1.PublishResponse); !ok {
		t.Fatalf("an epoch that is not UTF-8: answered with a %T, want a PublishResponse", bad)
	}
	if _, err := c.Marshal(bad); err == nil {
		t.Error("an epoch that is not UTF-8 was encoded; proto refuses it")
	}
}

// With only the server's own interceptors, a unary Publish's request and
// its answer are one allocation: the interceptors see the request's
// fields while the call runs, and once it has returned the request is
// empty, so that its answer, which grpc-go may hold for as long as the
// client leaves its flow-control window shut, holds none of its payload.
func TestUnaryPublishAnswersInItsRequestsAllocation(t *testing.T) {
	s := quietServer(t)
	ctx, dec := loopbackPublish()
	var seen any
	pass := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		seen = req
		if r, ok := req.(interface{ GetRoom() string }); !ok || r.GetRoom() != "r" {
			t.Errorf("an interceptor was handed %T, which does not name the room", req)
		}
		return handler(ctx, req)
	}
	h := methodHandler(t, serviceDesc(), "Publish")
	resp, err := h(s, ctx, dec, pass)
	if err != nil {
		t.Fatal(err)
	}
	var answer roomcastv1.PublishResponse
	bufs, err := newCodec().Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	if err := vtcodec.Unmarshal(bufs.Materialize(), &answer); err != nil || answer.GetOffset() != 1 || answer.GetEpoch() == "" {
		t.Fatalf("the answer decodes as %v, %v; want offset 1 and an epoch", &answer, err)
	}
	if r := seen.(interface {
		GetRoom() string
		GetData() []byte
	}); r.GetRoom() != "" || r.GetData() != nil {
		t.Errorf("after the call its request still holds room %q and payload %q", r.GetRoom(), r.GetData())
	}
	allocs := func() float64 {
		return testing.AllocsPerRun(200, func() {
			if _, err := h(s, ctx, dec, pass); err != nil {
				t.Fatal(err)
			}
		})
	}
	shared := allocs()
	s.publishCalls.own = false // as with an interceptor of WithGRPCOptions
	if apart := allocs(); shared > apart-1 {
		t.Errorf("%v allocations per Publish, %v with its request and answer apart: want one fewer", shared, apart)
	}
}

// newPublishReply returns the answer of a publish at offset off in epoch,
// as answer makes it in a new publishReply.
func newPublishReply(off uint64, epoch string) any {
	return new(publishReply).answer(off, epoch)
}

// quietServer returns a Server of the package's defaults that logs
// nothing, closed as t ends.
func quietServer(t *testing.T) *Server {
	t.Helper()
	s, err := New(WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// loopbackPublish returns the context of a call from a loopback peer, and
// a decoder that makes its request a publish of 64 bytes to room "r", as
// the codec decodes into the checked wrapper's message.
func loopbackPublish() (context.Context, func(any) error) {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}})
	payload := &roomcastv1.PublishRequest_Data{Data: make([]byte, 64)}
	return ctx, func(v any) error {
		req := v.(*checked).msg.(*roomcastv1.PublishRequest)
		req.Room, req.Payload = "r", payload
		return nil
	}
}
