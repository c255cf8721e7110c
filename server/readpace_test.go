package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/rawh2"
	"github.com/roomcast/roomcast/server"
)

// An address's request frames are read at the request frame rate past a
// burst, in plaintext and under TLS, whatever they are: commands on a
// Subscribe stream, padded DATA that carries nothing on a Publish stream
// (the call need not even be authorised), WINDOW_UPDATE frames the
// server's writes did not ask for, PRIORITY frames. The server
// answers a PING sent after them only once it has read them at that pace,
// and counts the wait; its other connections share the address's bucket.
// Without the rate, nothing waits.
func TestRequestFramesArePaced(t *testing.T) {
	const (
		rate   = 2000 // frames a second, in bursts of as many
		frames = 3000
		// The control frames each of the two connections may send before
		// the server has written it anything (controlframes.go).
		allowances = 2 * 32
	)
	command := []byte{0, 0, 0, 0, 2, 0x0a, 0} // a gRPC message of 2 bytes
	floods := []struct {
		name  string
		flood func(t *testing.T, c *rawh2.Conn, n int)
	}{
		{"commands", func(t *testing.T, c *rawh2.Conn, n int) {
			id, err := rawCall(c, roomcastv1.BrokerService_Subscribe_FullMethodName, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			for range n {
				if err := c.DataBytes(id, command); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"padding on a publish", func(t *testing.T, c *rawh2.Conn, n int) {
			id, err := rawCall(c, roomcastv1.BrokerService_Publish_FullMethodName, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Frames(func(fr *http2.Framer) error {
				for range n {
					if err := fr.WriteDataPadded(id, false, nil, make([]byte, 8)); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}},
		// Past the allowance a connection opens with, which the server's
		// writes add to (controlframes.go): here it writes nothing.
		{"window updates", func(t *testing.T, c *rawh2.Conn, n int) {
			if err := c.Frames(func(fr *http2.Framer) error {
				for range n {
					if err := fr.WriteWindowUpdate(0, 1<<10); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}},
		{"priority", func(t *testing.T, c *rawh2.Conn, n int) {
			if err := c.Frames(func(fr *http2.Framer) error {
				for range n {
					if err := fr.WritePriority(1, http2.PriorityParam{StreamDep: 3, Weight: 1}); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tr := range rawTransports(t) {
		for _, fl := range floods {
			for _, paced := range []bool{true, false} {
				name, r := tr.name+"/"+fl.name+"/paced", rate
				if !paced {
					name, r = tr.name+"/"+fl.name+"/unpaced", 0
				}
				t.Run(name, func(t *testing.T) {
					reg := prometheus.NewRegistry()
					addr := unfinishedServer(t, reg, append(tr.opts, server.WithRequestFrameRate(r), server.WithUnfinishedReadRate(0))...)
					ctx := within(t, 20*time.Second)
					waited := func() float64 { return counter(t, reg, "roomcast_request_frames_paced_seconds_total") }
					// Half the flood on one connection, half on another of
					// the address's: one bucket between them.
					var conns []*rawh2.Conn
					start := time.Now()
					for range 2 {
						c := tr.connectRaw(t, addr)
						conns = append(conns, c)
						fl.flood(t, c, frames/2)
						if err := c.Probe(1); err != nil {
							t.Fatal(err)
						}
					}
					for _, c := range conns {
						if _, err := c.WaitProbe(ctx, 1); err != nil {
							t.Fatalf("the server did not answer after the frames: %v", err)
						}
					}
					took := time.Since(start)
					if !paced {
						if w := waited(); w != 0 {
							t.Fatalf("an unpaced server counted %v s of paced reads", w)
						}
						return
					}
					// Past the burst, at the rate: the least the reads took.
					least := time.Duration(frames-rate-allowances) * time.Second / rate
					if w := waited(); took < least || w <= 0 {
						t.Fatalf("%d frames read in %v, with %v s counted paced; want at least %v, counted", frames, took, w, least)
					}
				})
			}
		}
	}
}

// A reader's WINDOW_UPDATE and PING frames, which grpc-go's client sends as
// it reads (its windows' updates, its BDP pings), are within what the
// server's writes allow: reading thousands of messages waits for nothing,
// even at a request frame rate that pacing any of them would pass.
func TestReadersControlFramesAreNotPaced(t *testing.T) {
	const messages = 3000
	reg := prometheus.NewRegistry()
	_, addr := start(t, server.WithMetrics(reg), server.WithRequestFrameRate(20))
	ctx := within(t, 30*time.Second)
	sub := subscribe(t, ctx, dial(t, addr), "fast.reader")
	pub := dial(t, addr)
	read := make(chan error, 1)
	go func() {
		for i := range messages {
			m, err := sub.recv()
			if err == nil && m.GetOffset() != uint64(i+1) {
				err = fmt.Errorf("message %d has offset %d", i+1, m.GetOffset())
			}
			if err != nil {
				read <- err
				return
			}
		}
		read <- nil
	}()
	waited := func() float64 { return counter(t, reg, "roomcast_request_frames_paced_seconds_total") }
	data := make([]byte, 1<<10)
	for i := range messages {
		if _, err := pub.Publish(ctx, &roomcastv1.PublishRequest{Room: "fast.reader", Payload: &roomcastv1.PublishRequest_Data{Data: data}}); err != nil {
			t.Fatalf("publish %d: %v (reads paced %v s)", i, err, waited())
		}
		if i%200 == 0 {
			if w := waited(); w != 0 {
				t.Fatalf("after %d messages, reads waited %v s", i, w)
			}
		}
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	if w := waited(); w != 0 {
		t.Fatalf("a reader's frames waited %v s", w)
	}
}
