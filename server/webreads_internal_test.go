package server

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// readCounter is a connection whose reads come from r, counted.
type readCounter struct {
	net.Conn
	r     io.Reader
	reads int
}

func (c *readCounter) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

// A web connection past its HTTP/2 preface reads the kernel webReadBuffer
// at a time, and hands net/http's framer, which reads a frame's header and
// then its payload, what it buffered: 100 frames, read as net/http reads
// them, take two reads of the connection, not 200. Every byte is still
// scanned (the frames counted), and the error that ends the bytes comes
// after them. The preface itself is read as asked, unbuffered: net/http
// reads it through a reader of its own, limited to the preface.
func TestWebConnectionReadsAreBuffered(t *testing.T) {
	var frames bytes.Buffer
	fr := http2.NewFramer(&frames, nil)
	const n = 100
	for i := range n {
		var err error
		if i%2 == 0 {
			err = fr.WriteRSTStream(uint32(2*i+1), http2.ErrCodeCancel) // counted, each
		} else {
			err = fr.WritePriority(1, http2.PriorityParam{StreamDep: 3})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	under := &readCounter{r: io.MultiReader(bytes.NewReader([]byte(http2.ClientPreface)), bytes.NewReader(frames.Bytes()))}
	c := &resetConn{Conn: under, guard: &resetGuard{rate: 1, burst: 100, maxHeaderBytes: 16 << 10, maxKeptStreams: 100}, web: true, tokens: 100, last: time.Now()}
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		t.Fatalf("the preface: %q, %v", preface, err)
	}
	prefaceReads := under.reads
	got := http2.NewFramer(nil, c)
	for i := range n {
		if _, err := got.ReadFrame(); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if _, err := got.ReadFrame(); err != io.EOF {
		t.Fatalf("past the frames: %v, want EOF", err)
	}
	if reads := under.reads - prefaceReads; reads > 3 {
		t.Errorf("%d frames of %d bytes took %d reads of the connection, want at most 3 (%d bytes at a time)", n, frames.Len(), reads, webReadBuffer)
	}
	if c.resets != n/2 {
		t.Errorf("%d resets counted, want %d: every byte read is scanned", c.resets, n/2)
	}
}
