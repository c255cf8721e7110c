package server

import (
	"context"
	"testing"

	"google.golang.org/grpc"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// publishOnly answers Publish, allocating nothing of its own.
type publishOnly struct {
	roomcastv1.UnimplementedBrokerServiceServer
	resp roomcastv1.PublishResponse
}

func (p *publishOnly) Publish(context.Context, *roomcastv1.PublishRequest) (*roomcastv1.PublishResponse, error) {
	return &p.resp, nil
}

// checkRequests's handlers decode through the codec's checks without an
// allocation of their own per call: what a generated handler allocates,
// and no more.
func TestCheckedHandlersAllocateNothingMore(t *testing.T) {
	plain := roomcastv1.BrokerService_ServiceDesc
	checkedDesc := plain
	checkRequests(&checkedDesc)
	publish := func(desc grpc.ServiceDesc) grpc.MethodHandler {
		for _, m := range desc.Methods {
			if m.MethodName == "Publish" {
				return m.Handler
			}
		}
		t.Fatal("no Publish")
		return nil
	}
	dec := func(v any) error { // as the codec decodes: into the wrapper's message if wrapped
		if c, ok := v.(*checked); ok {
			v = c.msg
		}
		v.(*roomcastv1.PublishRequest).Room = "r"
		return nil
	}
	srv, ctx := &publishOnly{}, context.Background()
	allocs := func(h grpc.MethodHandler) float64 {
		return testing.AllocsPerRun(100, func() {
			if _, err := h(srv, ctx, dec, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
	if got, want := allocs(publish(checkedDesc)), allocs(publish(plain)); got > want {
		t.Errorf("%v allocations per checked call, %v unchecked: want no more", got, want)
	}
}
