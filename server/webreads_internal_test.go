package server

import (
	"bytes"
	"errors"
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

// dataThenError is a reader that returns all of data with err, then err.
type dataThenError struct {
	data []byte
	err  error
}

func (r *dataThenError) Read(p []byte) (int, error) {
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, r.err
}

// webFrames is the HTTP/2 preface, then n frames, every other one a
// RST_STREAM (which the scanner counts in resets).
func webFrames(t *testing.T, n int) (preface, frames []byte) {
	t.Helper()
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	for i := range n {
		var err error
		if i%2 == 0 {
			err = fr.WriteRSTStream(uint32(2*i+1), http2.ErrCodeCancel)
		} else {
			err = fr.WritePriority(1, http2.PriorityParam{StreamDep: 3})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return []byte(http2.ClientPreface), b.Bytes()
}

// newWebTestConn is a plaintext web connection over under, its preface
// read as net/http reads it.
func newWebTestConn(t *testing.T, under net.Conn) *resetConn {
	t.Helper()
	c := &resetConn{Conn: under, raw: under, guard: &resetGuard{rate: 1, burst: 100, maxHeaderBytes: 16 << 10, maxKeptStreams: 100}, web: true, tokens: 100, last: time.Now()}
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		t.Fatalf("the preface: %q, %v", preface, err)
	}
	return c
}

// A plaintext web connection past its HTTP/2 preface reads the kernel
// webReadBuffer at a time, and hands net/http's framer, which reads a
// frame's header and then its payload, what it buffered: 100 frames, read
// as net/http reads them, take a few reads of the connection, not 200.
// Every byte is still scanned (the resets among them counted), and once
// the kernel has had less than the buffer, the buffer goes back to its
// pool. The preface is read as asked: net/http reads it through a reader
// of its own, limited to the preface.
func TestWebConnectionReadsAreBuffered(t *testing.T) {
	const n = 100
	preface, frames := webFrames(t, n)
	under := &readCounter{r: io.MultiReader(bytes.NewReader(preface), bytes.NewReader(frames))}
	c := newWebTestConn(t, under)
	if under.reads != 1 || c.rbuf.buf != nil {
		t.Fatalf("the preface took %d reads, buffered %v: want it read as asked", under.reads, c.rbuf.buf != nil)
	}
	got := http2.NewFramer(nil, c)
	for i := range n {
		if _, err := got.ReadFrame(); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if c.rbuf.buf != nil {
		t.Error("the buffer is held once the kernel had less than it, and all of it was taken")
	}
	if _, err := got.ReadFrame(); err != io.EOF {
		t.Fatalf("past the frames: %v, want EOF", err)
	}
	if reads := under.reads - 1; reads > 3 {
		t.Errorf("%d frames of %d bytes took %d reads of the connection, want at most 3 (%d bytes at a time)", n, len(frames), reads, webReadBuffer)
	}
	if c.resets != n/2 {
		t.Errorf("%d resets counted, want %d: every byte read is scanned", c.resets, n/2)
	}
}

// What a read buffered is handed out as a read from the kernel would be:
// after a hold on the connection's reads (the tap's pause after a refused
// call), not at all once the guard has closed the connection, and an error
// that came with the last bytes after them.
func TestWebConnectionBufferedReadsKeepTheConnectionsRules(t *testing.T) {
	preface, frames := webFrames(t, 10)
	header := make([]byte, 9) // a frame header, as net/http's framer reads it

	t.Run("held", func(t *testing.T) {
		c := newWebTestConn(t, &readCounter{r: io.MultiReader(bytes.NewReader(preface), bytes.NewReader(frames))})
		if _, err := io.ReadFull(c, header); err != nil {
			t.Fatal(err)
		}
		const hold = 100 * time.Millisecond
		c.holdReads(hold)
		start := time.Now()
		if _, err := io.ReadFull(c, header); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < hold-5*time.Millisecond {
			t.Errorf("a buffered frame was handed out %v into a hold of %v", waited, hold)
		}
	})
	t.Run("closed by the guard", func(t *testing.T) {
		tr := &tracked{}
		under := &guardedConn{Conn: &readCounter{r: io.MultiReader(bytes.NewReader(preface), bytes.NewReader(frames))}, t: tr}
		c := newWebTestConn(t, under)
		if _, err := io.ReadFull(c, header); err != nil {
			t.Fatal(err)
		}
		tr.closed.Store(true) // as the guard's closing marks it, beneath the reader
		if n, err := c.Read(header); !errors.Is(err, net.ErrClosed) {
			t.Errorf("a read after the guard closed the connection: %d bytes, %v; want net.ErrClosed", n, err)
		}
	})
	t.Run("an error with the last bytes", func(t *testing.T) {
		boom := errors.New("connection reset")
		c := newWebTestConn(t, &readCounter{r: io.MultiReader(bytes.NewReader(preface), &dataThenError{data: frames, err: boom})})
		got, err := io.ReadAll(c)
		if !errors.Is(err, boom) || !bytes.Equal(got, frames) {
			t.Errorf("read %d of %d bytes, then %v; want them all, then %v", len(got), len(frames), err, boom)
		}
	})
}
