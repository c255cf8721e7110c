package server

import (
	"bytes"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// The frames the request frame rate counts: every DATA frame of the
// methods other than the publishes; a publish's DATA frame only if no
// message begins in it (a piece of one, nothing, or all padding); frames
// a gRPC client sends next to none of (PRIORITY, SETTINGS, unknown
// types); not RST_STREAM (which has its own limit), nor WINDOW_UPDATE and
// PING within a connection's allowance (controlframes.go). Split reads
// count each frame once.
func TestRequestFrameCounting(t *testing.T) {
	const publish, subscribe = roomcastv1.BrokerService_Publish_FullMethodName, roomcastv1.BrokerService_Subscribe_FullMethodName
	msg := func(n int) []byte { return append([]byte{0, 0, 0, byte(n >> 8), byte(n)}, make([]byte, n)...) }
	for _, tc := range []struct {
		name   string
		frames func(p *scanPlay)
		want   int
	}{
		{"commands", func(p *scanPlay) {
			p.open(1, subscribe)
			for range 5 {
				p.data(1, msg(3), false)
			}
			p.client.WriteData(1, false, nil)
		}, 6},
		{"whole publishes", func(p *scanPlay) {
			for id := uint32(1); id < 10; id += 2 {
				p.open(id, publish)
				p.data(id, msg(40), true)
			}
		}, 0},
		{"a publish in pieces", func(p *scanPlay) {
			p.open(1, publish)
			m := msg(100)
			p.data(1, m[:3], false) // the prefix ends in the next frame: a message begins there
			p.data(1, m[3:50], false)
			for i := 50; i < len(m); i += 10 {
				p.data(1, m[i:i+10], false)
			}
		}, 1 + 5},
		{"nothing on a publish", func(p *scanPlay) {
			p.open(1, publish)
			p.client.WriteData(1, false, nil)
			p.client.WriteDataPadded(1, false, nil, make([]byte, 20))
			p.client.WriteDataPadded(1, false, nil, nil)
			p.data(1, msg(10), true)
		}, 3},
		{"frames gRPC does not send", func(p *scanPlay) {
			p.client.WritePriority(1, http2.PriorityParam{StreamDep: 3, Weight: 5})
			p.client.WriteSettings()
			p.client.WriteRawFrame(0xbb, 0, 0, []byte("x"))
		}, 3},
		{"flow control and pings", func(p *scanPlay) {
			p.client.WriteWindowUpdate(0, 1<<16)
			p.client.WriteWindowUpdate(1, 100) // less than a reader opens its window by: counted
			p.client.WritePing(false, [8]byte{})
			p.client.WriteSettingsAck()
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newScanPlay(t, 1)
			tc.frames(p)
			in := bytes.Clone(p.in.Bytes())
			for _, step := range []int{len(in), 7, 1} { // whole, and split
				c := &resetConn{guard: p.c.guard, skip: len(http2.ClientPreface), answers: answersAtOpen}
				for b := in; len(b) > 0; b = b[min(step, len(b)):] {
					if !c.scanFrames(b[:min(step, len(b))]) {
						t.Fatalf("reads of %d: the scan failed: %v", step, c.err)
					}
				}
				if c.frames != tc.want {
					t.Fatalf("reads of %d: %d frames counted, want %d", step, c.frames, tc.want)
				}
			}
		})
	}
}

// An address's connections share one bucket, which goes with the last of
// them; another address has its own.
func TestFrameBucketsArePerAddress(t *testing.T) {
	f := newFrameBuckets(100)
	conn := func(ip string) *resetConn {
		return &resetConn{Conn: &addrConn{remote: &net.TCPAddr{IP: net.ParseIP(ip), Port: 1}}, guard: &resetGuard{frames: f}}
	}
	a1, a2, b := conn("10.0.0.1"), conn("10.0.0.1"), conn("10.0.0.2")
	owed := func(c *resetConn, frames int) time.Duration {
		return reserve(c.pause.bucket(f, c.RemoteAddr).lim, time.Now(), frames)
	}
	if d := owed(a1, 100); d > 0 {
		t.Fatalf("the burst waited %v", d)
	}
	if d := owed(a2, 50); d < 400*time.Millisecond {
		t.Fatalf("the address's other connection owes %v for 50 frames past its burst at 100 a second, want about 500ms", d)
	}
	if d := owed(b, 100); d > 0 {
		t.Fatalf("another address's burst waited %v", d)
	}
	if n := len(f.byAddr); n != 2 {
		t.Fatalf("%d buckets, want 2", n)
	}
	a1.Close()
	a2.Close()
	a2.Close()
	if _, ok := f.byAddr["10.0.0.1"]; ok || len(f.byAddr) != 1 {
		t.Fatalf("the buckets once 10.0.0.1's connections closed: %v", f.byAddr)
	}
	b.closeNow()
	if len(f.byAddr) != 0 {
		t.Fatalf("buckets left once every connection closed: %v", f.byAddr)
	}
	c := conn("10.0.0.1")
	c.Close()
	if c.pause.bucket(f, c.RemoteAddr) != nil || len(f.byAddr) != 0 {
		t.Fatalf("a closed connection joined a bucket: %v", f.byAddr)
	}
	if waited := c.pause.wait(time.Hour); waited != 0 {
		t.Fatalf("a closed connection's reader waited %v", waited)
	}
}
