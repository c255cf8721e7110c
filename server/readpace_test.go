package server_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// A connection's DATA frames on calls other than the publishes, and its
// empty ones on any call, are read at the request frame rate past a
// burst, in plaintext and under TLS: the server answers a PING sent after
// a flood of empty frames on a Subscribe stream only once it has read them
// at that pace, and counts the wait. A publish sent a byte a frame is not
// paced, and goes through. Without the rate, nothing waits.
func TestRequestFramesArePaced(t *testing.T) {
	const (
		rate   = 2000 // frames a second, in bursts of as many
		frames = 3000
	)
	for _, tr := range rawTransports(t) {
		for _, paced := range []bool{true, false} {
			name, r := tr.name+"/paced", rate
			if !paced {
				name, r = tr.name+"/unpaced", 0
			}
			t.Run(name, func(t *testing.T) {
				reg := prometheus.NewRegistry()
				addr := unfinishedServer(t, reg, append(tr.opts, server.WithRequestFrameRate(r), server.WithUnfinishedReadRate(0))...)
				ctx := within(t, 20*time.Second)
				c := tr.connectRaw(t, addr)
				waited := func() float64 { return counter(t, reg, "roomcast_request_frames_paced_seconds_total") }

				// A publish a byte a frame: frames, but a publish's.
				msg := publishBytes(t, "bytewise", frames)
				pub, err := rawCall(c, roomcastv1.BrokerService_Publish_FullMethodName, nil, false)
				if err != nil {
					t.Fatal(err)
				}
				for i := range msg {
					if err := c.DataBytes(pub, msg[i:i+1]); err != nil {
						t.Fatal(err)
					}
				}
				if err := c.EndStream(pub); err != nil {
					t.Fatal(err)
				}
				if err := c.Flush(); err != nil {
					t.Fatal(err)
				}
				if end, err := c.WaitStream(ctx, pub); err != nil || end.Status != "0" {
					t.Fatalf("the publish sent a byte a frame ended %+v, %v; want OK", end, err)
				}
				if w := waited(); w != 0 {
					t.Fatalf("a publish's frames were paced: %v s", w)
				}

				sub, err := rawCall(c, roomcastv1.BrokerService_Subscribe_FullMethodName, nil, false)
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				if err := c.EmptyData(sub, frames); err != nil {
					t.Fatal(err)
				}
				if err := c.Probe(1); err != nil {
					t.Fatal(err)
				}
				if _, err := c.WaitProbe(ctx, 1); err != nil {
					t.Fatalf("the server did not answer after the frames: %v", err)
				}
				took := time.Since(start)
				if !paced {
					if w := waited(); w != 0 {
						t.Fatalf("an unpaced server counted %v s of paced reads", w)
					}
					return
				}
				// Past the burst, at the rate: the least the reads took.
				least := time.Duration(frames-rate) * time.Second / rate
				if w := waited(); took < least || w <= 0 {
					t.Fatalf("%d empty frames read in %v, with %v s counted paced; want at least %v, counted", frames, took, w, least)
				}
			})
		}
	}
}
