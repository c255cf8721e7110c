package server_test

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2client is an HTTP/2 client driven by hand, for tests that send what no
// gRPC client would: it writes frames with golang.org/x/net/http2's Framer
// and encodes header blocks with its hpack package. It answers the server's
// SETTINGS and PINGs and records how each stream ended. Its methods are
// safe for concurrent use.
type h2client struct {
	t    testing.TB
	conn net.Conn
	done chan struct{} // closed when the reader returns: the connection is gone

	wmu  sync.Mutex // guards the framer's writes, the encoder and next
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	next uint32

	mu     sync.Mutex
	ends   map[uint32]streamEnd // the first end seen per stream
	goaway bool
	change chan struct{} // closed and replaced whenever ends, goaway or done change
}

// streamEnd is how the server ended a stream: with a reset, or with
// trailers carrying a gRPC status.
type streamEnd struct {
	reset   bool
	code    http2.ErrCode // with reset
	status  string        // grpc-status, without reset
	message string        // grpc-message
}

// h2MaxFrame is the frame payload size every HTTP/2 peer must accept.
const h2MaxFrame = 16 << 10

// dialH2 opens a raw HTTP/2 connection to addr, sending the client preface
// and empty SETTINGS. It is closed when the test ends.
func dialH2(t testing.TB, addr string) *h2client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return newH2(t, conn)
}

// newH2 speaks HTTP/2 on conn, which it closes when the test ends.
func newH2(t testing.TB, conn net.Conn) *h2client {
	t.Helper()
	h := &h2client{t: t, conn: conn, done: make(chan struct{}), next: 1, ends: make(map[uint32]streamEnd), change: make(chan struct{})}
	h.fr = http2.NewFramer(conn, conn)
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.enc = hpack.NewEncoder(&h.hbuf)
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	if err := h.fr.WriteSettings(); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	go h.read()
	t.Cleanup(func() {
		conn.Close()
		<-h.done
	})
	return h
}

func (h *h2client) read() {
	defer func() {
		h.mu.Lock()
		close(h.done)
		h.notify()
		h.mu.Unlock()
	}()
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				h.write(func() error { return h.fr.WriteSettingsAck() })
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				h.write(func() error { return h.fr.WritePing(true, f.Data) })
			}
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() { // trailers, or a trailers-only response
				var end streamEnd
				for _, hf := range f.RegularFields() {
					switch hf.Name {
					case "grpc-status":
						end.status = hf.Value
					case "grpc-message":
						end.message = hf.Value
					}
				}
				h.ended(f.StreamID, end)
			}
		case *http2.RSTStreamFrame:
			h.ended(f.StreamID, streamEnd{reset: true, code: f.ErrCode})
		case *http2.GoAwayFrame:
			h.mu.Lock()
			h.goaway = true
			h.notify()
			h.mu.Unlock()
		}
	}
}

// notify wakes the waiters; caller holds h.mu.
func (h *h2client) notify() {
	close(h.change)
	h.change = make(chan struct{})
}

func (h *h2client) ended(id uint32, end streamEnd) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, seen := h.ends[id]; !seen {
		h.ends[id] = end
		h.notify()
	}
}

func (h *h2client) write(f func() error) error {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	return f()
}

// call opens a stream for a gRPC call to method with the given extra
// header fields, ending the stream with the headers if endStream, and
// returns its id. The header block is split into frames of h2MaxFrame.
func (h *h2client) call(method string, extra []hpack.HeaderField, endStream bool) uint32 {
	h.t.Helper()
	id, err := h.open(method, extra, endStream)
	if err != nil {
		h.t.Fatalf("writing the headers of stream %d: %v", id, err)
	}
	return id
}

// open is call, returning the error of a write the server cut short.
func (h *h2client) open(method string, extra []hpack.HeaderField, endStream bool) (uint32, error) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	id := h.next
	h.next += 2
	h.hbuf.Reset()
	for _, f := range append([]hpack.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: "http"},
		{Name: ":path", Value: method},
		{Name: ":authority", Value: "roomcast.test"},
		{Name: "content-type", Value: "application/grpc"},
		{Name: "te", Value: "trailers"},
	}, extra...) {
		if err := h.enc.WriteField(f); err != nil {
			return id, err
		}
	}
	block := h.hbuf.Bytes()
	first := block[:min(len(block), h2MaxFrame)]
	block = block[len(first):]
	err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: endStream, EndHeaders: len(block) == 0})
	for err == nil && len(block) > 0 {
		chunk := block[:min(len(block), h2MaxFrame)]
		block = block[len(chunk):]
		err = h.fr.WriteContinuation(id, len(block) == 0, chunk)
	}
	return id, err
}

// data sends one gRPC message, msg, on stream id and ends the stream.
func (h *h2client) data(id uint32, msg []byte) error {
	frame := append([]byte{0, byte(len(msg) >> 24), byte(len(msg) >> 16), byte(len(msg) >> 8), byte(len(msg))}, msg...)
	return h.write(func() error { return h.fr.WriteData(id, true, frame) })
}

// waitEnd returns how stream id ended, or false if ctx ends first or the
// connection is gone without it.
func (h *h2client) waitEnd(ctx context.Context, id uint32) (streamEnd, bool) {
	for {
		h.mu.Lock()
		end, ok := h.ends[id]
		change := h.change
		h.mu.Unlock()
		if ok {
			return end, true
		}
		select {
		case <-change:
		case <-h.done:
			h.mu.Lock()
			end, ok := h.ends[id]
			h.mu.Unlock()
			return end, ok
		case <-ctx.Done():
			return streamEnd{}, false
		}
	}
}

// waitClosed reports whether the server closed the connection before ctx
// ended, and whether it sent a GOAWAY first.
func (h *h2client) waitClosed(ctx context.Context) (closed, goaway bool) {
	select {
	case <-h.done:
		h.mu.Lock()
		defer h.mu.Unlock()
		return true, h.goaway
	case <-ctx.Done():
		return false, false
	}
}
