package server

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2"
)

// WINDOW_UPDATE and PING frames are free within a connection's allowance:
// answersAtOpen, and what the server's writes add (answerFrames for each
// DATA frame, one for each PING, nothing for a PING's answer), banked up
// to maxAnswers. Past it each is a request frame to pace. Without the
// write skim they are never counted.
func TestControlFramesPastWhatTheServerWroteAreCounted(t *testing.T) {
	p := newScanPlay(t, 1)
	c := &resetConn{guard: p.c.guard, skip: len(http2.ClientPreface), answers: answersAtOpen}
	var in, out bytes.Buffer
	in.WriteString(http2.ClientPreface)
	client, srv := http2.NewFramer(&in, nil), http2.NewFramer(&out, nil)
	control := func(n int) {
		t.Helper()
		for i := range n {
			if i%2 == 0 {
				client.WriteWindowUpdate(uint32(i%5), 1)
			} else {
				client.WritePing(false, [8]byte{byte(i)})
			}
		}
		// In reads of 5 bytes, so that frames come split.
		for b := in.Bytes(); len(b) > 0; b = b[min(5, len(b)):] {
			if !c.scanFrames(b[:min(5, len(b))]) {
				t.Fatalf("the scan failed: %v", c.err)
			}
		}
		in.Reset()
	}
	written := func() {
		t.Helper()
		for b := out.Bytes(); len(b) > 0; b = b[min(7, len(b)):] {
			c.scanWrite(b[:min(7, len(b))])
		}
		out.Reset()
	}
	expect := func(want int) {
		t.Helper()
		if c.frames != want {
			t.Fatalf("%d control frames counted, want %d", c.frames, want)
		}
	}

	control(answersAtOpen)
	expect(0)
	control(10)
	expect(10)

	for id := uint32(1); id <= 9; id += 2 {
		srv.WriteData(id, false, make([]byte, 100))
	}
	srv.WritePing(false, [8]byte{1})
	srv.WritePing(true, [8]byte{2}) // an answer asks for none
	srv.WriteHeaders(http2.HeadersFrameParam{StreamID: 11, BlockFragment: []byte{0x88}, EndHeaders: true})
	written()
	control(5*answerFrames + 1)
	expect(10)
	control(1)
	expect(11)

	// A long read banks at most maxAnswers.
	for range maxAnswers {
		srv.WriteData(1, false, nil)
	}
	written()
	control(maxAnswers)
	expect(11)
	control(3)
	expect(14)

	// Without the header limit, writes are not skimmed and the allowance
	// cannot be earned: control frames are not counted at all.
	off := &resetConn{guard: &resetGuard{}, skip: len(http2.ClientPreface)}
	in.WriteString(http2.ClientPreface)
	for range 100 {
		client.WriteWindowUpdate(0, 1)
		client.WritePing(false, [8]byte{})
	}
	if !off.scanFrames(in.Bytes()) || off.frames != 0 {
		t.Fatalf("without the write skim: %d frames counted (err %v), want 0", off.frames, off.err)
	}
}
