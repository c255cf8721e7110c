package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// (j) Past its first burst, the credential is past its publish rate (10,000
// a second by default) for almost every publish: each stream sends batches
// of the most publishes a request may carry, and reads the answers on a
// goroutine of its own, so that its sends go as fast as the server reads
// them. A stream the server ends is opened again.
func pubstreamFlood(ctx context.Context, s childSpec) (string, error) {
	const connections, streams, batch = 4, 8, 256
	conns, closeAll, err := dial(s.Addr, connections)
	if err != nil {
		return "", err
	}
	defer closeAll()
	var t tally // publishes by answer
	var requests, opened atomic.Int64
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			c := roomcastv1.NewBrokerServiceClient(conns[i%len(conns)])
			for !ended(ctx) {
				if floodOnePublishStream(ctx, c, s.Key, fmt.Sprint("pubstream.", i), batch, &requests, &t) {
					opened.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return fmt.Sprintf("%s requests of %d publishes sent on %s streams; publishes answered: %s", commas(int(requests.Load())), batch, commas(int(opened.Load())), t.String()), nil
}

// floodOnePublishStream sends batches on one new PublishStream until it
// ends, and reports whether it opened.
func floodOnePublishStream(ctx context.Context, c roomcastv1.BrokerServiceClient, key, room string, batch int, requests *atomic.Int64, t *tally) bool {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the sender
	stream, err := c.PublishStream(withKey(ctx, key))
	if err != nil {
		t.code(ctx, err)
		return false
	}
	pub := &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: "x"}}
	go func() {
		for n := 0; !ended(ctx); n++ {
			req := &roomcastv1.PublishStreamRequest{Id: fmt.Sprint(n), Publish: pub, Batch: make([]*roomcastv1.PublishStreamItem, batch-1)}
			for i := range req.Batch {
				req.Batch[i] = &roomcastv1.PublishStreamItem{Id: fmt.Sprint(n, ".", i), Publish: pub}
			}
			if stream.Send(req) != nil {
				return
			}
			requests.Add(1)
		}
	}()
	for {
		resp, err := stream.Recv()
		if err != nil {
			if !ended(ctx) {
				t.add("stream ended: "+err.Error(), 1)
			}
			return true
		}
		answer(t, resp.GetError())
		for _, r := range resp.GetBatch() {
			answer(t, r.GetError())
		}
	}
}

// answer counts one publish's answer: OK, or its code.
func answer(t *tally, e *roomcastv1.Error) {
	if e == nil {
		t.add("OK", 1)
		return
	}
	t.add(codes.Code(e.GetCode()).String(), 1)
}
