package server_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/server"
)

func TestBadPublishesAreRefusedWithTheRightCode(t *testing.T) {
	_, addr := start(t, server.WithMaxMessageBytes(1000))
	ctx := testCtx(t)
	c := dial(t, addr)
	text := func(s string) *roomcastv1.PublishRequest_Text { return &roomcastv1.PublishRequest_Text{Text: s} }
	for _, tc := range []struct {
		name string
		req  *roomcastv1.PublishRequest
		code codes.Code
		says string
	}{
		{"empty room", &roomcastv1.PublishRequest{}, codes.InvalidArgument, "room name is empty"},
		{"long room", &roomcastv1.PublishRequest{Room: strings.Repeat("r", 201)}, codes.InvalidArgument, "the limit is 200"},
		{"space in room", &roomcastv1.PublishRequest{Room: "a b"}, codes.InvalidArgument, "not allowed"},
		{"control character", &roomcastv1.PublishRequest{Room: "a\x01"}, codes.InvalidArgument, "not allowed"},
		{"empty segment", &roomcastv1.PublishRequest{Room: "a..b"}, codes.InvalidArgument, "empty segment"},
		{"wildcard", &roomcastv1.PublishRequest{Room: "chat.*"}, codes.InvalidArgument, "not allowed"},
		{"oversize text", &roomcastv1.PublishRequest{Room: "r", Payload: text(strings.Repeat("x", 1001))}, codes.ResourceExhausted, "the limit is 1000"},
		{"oversize data", &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: make([]byte, 1001)}}, codes.ResourceExhausted, "the limit is 1000"},
		{"headers push it over", &roomcastv1.PublishRequest{Room: "r", Payload: text(strings.Repeat("x", 990)), Headers: map[string]string{"k": strings.Repeat("v", 20)}}, codes.ResourceExhausted, "the limit is 1000"},
		{"far oversize", &roomcastv1.PublishRequest{Room: "r", Payload: text(strings.Repeat("x", 10<<20))}, codes.ResourceExhausted, "larger than max"},
		{"bad header key", &roomcastv1.PublishRequest{Room: "r", Headers: map[string]string{"a b": "c"}}, codes.InvalidArgument, "header key"},
		{"empty header key", &roomcastv1.PublishRequest{Room: "r", Headers: map[string]string{"": "c"}}, codes.InvalidArgument, "header key"},
		{"forged exclude_session", &roomcastv1.PublishRequest{Room: "r", ExcludeSession: "x/../y"}, codes.InvalidArgument, "exclude_session"},
		{"long session_id", &roomcastv1.PublishRequest{Room: "r", SessionId: strings.Repeat("s", 65)}, codes.InvalidArgument, "session_id"},
		{"long content type", &roomcastv1.PublishRequest{Room: "r", ContentType: strings.Repeat("t", 257)}, codes.InvalidArgument, "content type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Publish(ctx, tc.req)
			if st := status.Convert(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.says) {
				t.Errorf("got %v, want %v saying %q", err, tc.code, tc.says)
			}
		})
	}
	// The server still serves.
	sub := subscribe(t, ctx, c, "r")
	publishText(t, ctx, c, "r", "still here")
	if m := sub.next(); m.GetText() != "still here" {
		t.Errorf("got %v", m)
	}
}

func TestBadCommandsGetErrorRepliesAndTheStreamStaysUp(t *testing.T) {
	_, addr := start(t, server.WithMaxRoomsPerSession(2))
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "joined")
	join := func(id, room string) *roomcastv1.SubscribeRequest {
		return &roomcastv1.SubscribeRequest{Id: id, Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: room}}}
	}
	leave := func(id, room string) *roomcastv1.SubscribeRequest {
		return &roomcastv1.SubscribeRequest{Id: id, Command: &roomcastv1.SubscribeRequest_Leave{Leave: &roomcastv1.LeaveCommand{Room: room}}}
	}
	for _, tc := range []struct {
		name string
		req  *roomcastv1.SubscribeRequest
		code codes.Code
		says string
	}{
		{"no command", &roomcastv1.SubscribeRequest{Id: "1"}, codes.InvalidArgument, "set join, leave or refresh"},
		{"empty room", join("2", ""), codes.InvalidArgument, "empty"},
		{"bad room", join("3", "a\tb"), codes.InvalidArgument, "not allowed"},
		{"duplicate join", join("4", "joined"), codes.AlreadyExists, "already joined"},
		{"leave not joined", leave("5", "elsewhere"), codes.NotFound, "not joined"},
		{"leave bad room", leave("6", ".x"), codes.InvalidArgument, "dot"},
		{"too many rooms", nil, codes.ResourceExhausted, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			if req == nil {
				if rep := sub.command(join("7a", "second")); rep.GetError() != nil {
					t.Fatal(rep.GetError())
				}
				req = join("7", "third")
			}
			rep := sub.command(req)
			if rep.GetError().GetCode() != int32(tc.code) || !strings.Contains(rep.GetError().GetMessage(), tc.says) || rep.GetResult() != nil {
				t.Errorf("reply %v, want code %v saying %q", rep, tc.code, tc.says)
			}
		})
	}
	// Join and leave storms leave the stream working and nothing behind.
	for range 200 {
		if rep := sub.command(leave("l", "second")); rep.GetError() != nil {
			t.Fatal(rep.GetError())
		}
		if rep := sub.command(join("j", "second")); rep.GetError() != nil {
			t.Fatal(rep.GetError())
		}
	}
	publishText(t, ctx, c, "joined", "still here")
	if m := sub.next(); m.GetText() != "still here" {
		t.Errorf("got %v", m)
	}
}

// A configuration New refuses leaves nothing running (goleak checks).
func TestNewRefusesAMessageLimitOverTheBacklog(t *testing.T) {
	if _, err := server.New(server.WithMaxMessageBytes(8 << 20)); err == nil || !strings.Contains(err.Error(), "backlog") {
		t.Errorf("New: %v", err)
	}
}

// rawCodec sends a request's bytes as they are, to put on the wire what no
// protobuf library would encode.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}
func (rawCodec) Unmarshal(mem.BufferSlice, any) error { return nil }
func (rawCodec) Name() string                         { return "proto" }

// grpc-go refuses a request it cannot decode, invalid UTF-8 in a string
// field among them, with INTERNAL before any handler runs; the server goes
// on serving. (Room names are ASCII, so nothing valid is lost.)
func TestUndecodableRequestsAreRefusedByGRPC(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	conn := servertest.Dial(t, addr)
	// PublishRequest{room: "caf\xff"}: field 1, length 4.
	raw := []byte{0x0a, 0x04, 'c', 'a', 'f', 0xff}
	err := conn.Invoke(ctx, roomcastv1.BrokerService_Publish_FullMethodName, raw, new([]byte), grpc.ForceCodecV2(rawCodec{}))
	if st := status.Convert(err); st.Code() != codes.Internal || !strings.Contains(st.Message(), "UTF-8") {
		t.Errorf("invalid UTF-8 in the room: %v", err)
	}
	if _, err := roomcastv1.NewBrokerServiceClient(conn).Publish(ctx, &roomcastv1.PublishRequest{Room: "r"}); err != nil {
		t.Errorf("the server stopped serving: %v", err)
	}
}
