package server

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// A web connection is scanned only once it has begun with the whole HTTP/2
// preface, however the preface is split between reads; one that begins
// with anything else (HTTP/1.1, or a preface that goes wrong part way) is
// never scanned, whatever comes after. Of an HTTP/2 connection's DATA
// frames, those that carry little are counted: padded ones, those under
// webDataFrameMin that do not end their stream, and any on a stream whose
// body is not under way. A body's bytes are held until it ends.
func TestWebScannerSniffsThePrefaceAndCountsFramesThatCarryLittle(t *testing.T) {
	var frames bytes.Buffer
	fr := http2.NewFramer(&frames, nil)
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":path", Value: "/roomcast.v1.BrokerService/Publish"}} {
		if err := enc.WriteField(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, err := range []error{
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true}), // a body under way
		fr.WritePriority(1, http2.PriorityParam{StreamDep: 3}),                                                // counted
		fr.WriteDataPadded(1, false, nil, make([]byte, 8)),                                                    // counted: nothing but padding
		fr.WriteDataPadded(1, false, make([]byte, 2048), []byte{0}),                                           // counted: padded
		fr.WriteData(1, false, []byte("a few bytes")),                                                         // counted: small, not the end
		fr.WriteData(1, false, make([]byte, webDataFrameMin)),                                                 // a piece of a large body
		fr.WriteData(1, true, []byte("{}")),                                                                   // the end of the body
		fr.WriteData(1, true, nil),                                                                            // counted: its stream is over
		fr.WriteData(3, true, nil),                                                                            // counted: a stream never opened
		fr.WriteWindowUpdate(0, 1<<20),                                                                        // not counted, as on the gRPC port
		fr.WriteRSTStream(5, http2.ErrCodeCancel),                                                             // counted apart
		fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush}),                                          // counted
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	const wantFrames = 7
	h2 := append([]byte(http2.ClientPreface), frames.Bytes()...)
	for _, tc := range []struct {
		name   string
		stream []byte
		plain  bool
	}{
		{"HTTP/2", h2, false},
		{"HTTP/1.1", append([]byte("POST /roomcast.v1.BrokerService/Publish HTTP/1.1\r\nHost: x\r\n\r\n"), h2...), true},
		{"a preface gone wrong", append([]byte("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"), frames.Bytes()...), true},
	} {
		for split := 1; split <= len(http2.ClientPreface)+1; split++ {
			c := &resetConn{guard: &resetGuard{rate: 1, burst: 100, maxHeaderBytes: 16 << 10, maxKeptStreams: 100}, web: true, tokens: 100}
			for p := tc.stream; len(p) > 0; {
				n := min(split, len(p))
				if !c.scanFrames(p[:n]) {
					t.Fatalf("%s, read %d bytes at a time: the scan refused it: %v", tc.name, split, c.err)
				}
				p = p[n:]
			}
			want := wantFrames
			if tc.plain {
				want = 0
			}
			if c.plain != tc.plain || c.frames != want || c.held != 0 || !tc.plain && (c.resets != 1 || c.skip != 0 || c.fh.n != 0) {
				t.Fatalf("%s, read %d bytes at a time: plain %v, %d frames counted, %d resets, %d bytes held; want plain %v, %d frames, none held", tc.name, split, c.plain, c.frames, c.resets, c.held, tc.plain, want)
			}
		}
	}
}
