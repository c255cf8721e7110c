package server_test

import (
	"fmt"
	"testing"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

func TestPublishReachesSubscriberWithEveryField(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "chat.room-42")

	req := &roomcastv1.PublishRequest{
		Room:        "chat.room-42",
		Payload:     &roomcastv1.PublishRequest_Data{Data: []byte{0, 1, 2, 255}},
		ContentType: "application/octet-stream",
		Headers:     map[string]string{"trace-id": "abc", "x.y": "z"},
		SessionId:   sub.session,
	}
	resp, err := c.Publish(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOffset() != 1 {
		t.Errorf("first offset %d, want 1", resp.GetOffset())
	}
	if off := publishText(t, ctx, c, "chat.room-42", `{"hello":"world"}`); off != 2 {
		t.Errorf("second offset %d, want 2", off)
	}

	m := sub.next()
	if m.GetRoom() != req.Room || m.GetOffset() != 1 || string(m.GetData()) != string(req.GetData()) ||
		m.GetContentType() != req.ContentType || m.GetPublisherSession() != sub.session || !m.GetPublishTime().IsValid() {
		t.Errorf("got %v", m)
	}
	if fmt.Sprint(m.GetHeaders()) != fmt.Sprint(req.Headers) {
		t.Errorf("headers %v, want %v", m.GetHeaders(), req.Headers)
	}
	m = sub.next()
	if m.GetOffset() != 2 || m.GetText() != `{"hello":"world"}` || m.GetData() != nil {
		t.Errorf("text message arrived as %v", m)
	}
}
