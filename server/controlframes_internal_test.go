package server

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2"
)

// WINDOW_UPDATE and PING frames are free within a connection's allowance:
// answersAtOpen, and what the server's writes add (answersPerData for each
// DATA frame of minAnsweredBytes or more, answersPerSmallData for a
// smaller one, one for each PING, nothing for a PING's answer), banked up
// to maxAnswers. Past it each is a request frame to pace; so is a
// WINDOW_UPDATE of less than minAnsweredBytes for a stream, or for the
// connection while its window is short, and GOAWAY. Without the write skim WINDOW_UPDATE
// and PING are never counted.
func TestControlFramesPastWhatTheServerWroteAreCounted(t *testing.T) {
	p := newScanPlay(t, 1)
	for _, step := range []int{1, 3, 5, 4096} {
		c := &resetConn{guard: p.c.guard, skip: len(http2.ClientPreface), answers: answersAtOpen}
		var in, out bytes.Buffer
		in.WriteString(http2.ClientPreface)
		client, srv := http2.NewFramer(&in, nil), http2.NewFramer(&out, nil)
		scan := func() {
			t.Helper()
			for b := in.Bytes(); len(b) > 0; b = b[min(step, len(b)):] {
				if !c.scanFrames(b[:min(step, len(b))]) {
					t.Fatalf("reads of %d: the scan failed: %v", step, c.err)
				}
			}
			in.Reset()
		}
		control := func(n int) {
			t.Helper()
			for i := range n {
				if i%2 == 0 {
					client.WriteWindowUpdate(uint32(i%5), minAnsweredBytes+uint32(i))
				} else {
					client.WritePing(false, [8]byte{byte(i)})
				}
			}
			scan()
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
				t.Fatalf("reads of %d: %d control frames counted, want %d", step, c.frames, want)
			}
		}

		control(answersAtOpen)
		expect(0)
		control(10)
		expect(10)

		for id := uint32(1); id <= 9; id += 2 {
			srv.WriteData(id, false, make([]byte, minAnsweredBytes))
		}
		srv.WriteData(11, false, make([]byte, minAnsweredBytes-1)) // a small one allows fewer
		srv.WritePing(false, [8]byte{1})
		srv.WritePing(true, [8]byte{2}) // an answer asks for none
		srv.WriteHeaders(http2.HeadersFrameParam{StreamID: 13, BlockFragment: []byte{0x88}, EndHeaders: true})
		written()
		control(5*answersPerData + answersPerSmallData + 1)
		expect(10)
		control(1)
		expect(11)

		// A long read banks at most maxAnswers.
		for range maxAnswers {
			srv.WriteData(1, false, make([]byte, minAnsweredBytes))
		}
		written()
		control(maxAnswers)
		expect(11)
		control(3)
		expect(14)

		// Updates of less than minAnsweredBytes, which a client that opens
		// its windows a byte at a time sends, are counted: a stream's
		// always, the connection's while its window is short (the DATA
		// written has used it up); so is GOAWAY.
		srv.WriteData(1, false, make([]byte, minAnsweredBytes))
		written()
		for range 3 {
			client.WriteWindowUpdate(1, 1)
		}
		client.WriteWindowUpdate(0, minAnsweredBytes-1)
		client.WriteGoAway(0, http2.ErrCodeNo, nil)
		scan()
		expect(19)
		// With the connection's window open, its small updates (grpc-go
		// sends one before each BDP PING) draw on the allowance.
		client.WriteWindowUpdate(0, 1<<30)
		client.WriteWindowUpdate(0, 5)
		client.WritePing(false, [8]byte{})
		scan()
		expect(19)
		control(1)
		expect(20)
	}

	// Without the header limit, writes are not skimmed and the allowance
	// cannot be earned: control frames are not counted at all.
	off := &resetConn{guard: &resetGuard{}, skip: len(http2.ClientPreface)}
	var in bytes.Buffer
	in.WriteString(http2.ClientPreface)
	client := http2.NewFramer(&in, nil)
	for range 100 {
		client.WriteWindowUpdate(0, 1)
		client.WritePing(false, [8]byte{})
	}
	if !off.scanFrames(in.Bytes()) || off.frames != 0 {
		t.Fatalf("without the write skim: %d frames counted (err %v), want 0", off.frames, off.err)
	}
}
