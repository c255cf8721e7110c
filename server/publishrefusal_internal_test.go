package server

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Once the credential's publish rate refuses one publish of a batch, the
// rest of the batch gets that refusal, one answer shared by all, rather
// than a rate check and a status built for each: the limiter is not asked
// again.
func TestABatchPastThePublishRateSharesOneRefusal(t *testing.T) {
	s, err := New(WithPublishRate(0.001, 1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	id := &auth.Identity{Subject: "flood", Method: auth.MethodAnonymous}
	pub := func() *roomcastv1.PublishRequest {
		return &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Text{Text: "x"}}
	}
	req := &roomcastv1.PublishStreamRequest{Id: "0", Publish: pub()}
	for i := range 8 {
		req.Batch = append(req.Batch, &roomcastv1.PublishStreamItem{Id: fmt.Sprint(i + 1), Publish: pub()})
	}
	req.Batch[3].Id = string([]byte{0xff}) // not UTF-8: refused as bad input, without an id
	resp := s.publishRequest(broker.WithOwner(context.Background(), id.Subject), id, nil, req)
	if resp.GetOk() == nil {
		t.Fatalf("the first publish, within the burst: %v", resp)
	}
	first := resp.GetBatch()[0].GetError()
	if codes.Code(first.GetCode()) != codes.ResourceExhausted || first.GetRetryAfter() == nil {
		t.Fatalf("the second publish, past the rate: %v, want RESOURCE_EXHAUSTED with a retry delay", resp.GetBatch()[0])
	}
	for i, r := range resp.GetBatch()[1:] {
		if i+1 == 3 {
			if r.GetId() != "" || codes.Code(r.GetError().GetCode()) != codes.InvalidArgument {
				t.Errorf("batch answer 3, of an invalid id: %v, want INVALID_ARGUMENT with no id", r)
			}
			continue
		}
		if want := fmt.Sprint(i + 2); r.GetId() != want || r.GetError() != first {
			t.Errorf("batch answer %d: id %q, error %p %v; want id %q and the shared refusal %p", i+1, r.GetId(), r.GetError(), r.GetError(), want, first)
		}
	}
}
