// Package rawh2 is the client side of HTTP/2 at the level of frames, enough
// to send a gRPC server what no gRPC client would: streams reset as soon as
// they open, header blocks built by hand. The server's tests and the attack
// harness (internal/attack) use it against servers on loopback.
package rawh2

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"sync"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Conn is one HTTP/2 connection to a server. Its writing methods are not
// safe to call concurrently; Flush sends what they wrote. A goroutine reads
// what the server sends until the connection ends or the server answers
// Ping; Wait reports what it saw, and WaitStream how a stream ended.
type Conn struct {
	conn  net.Conn
	w     *bufio.Writer
	fr    *http2.Framer
	enc   *hpack.Encoder
	block bytes.Buffer
	next  uint32 // the next stream id

	done    chan struct{} // closed when the reader ends
	mu      sync.Mutex
	end     End
	streams map[uint32]StreamEnd // how each stream the server ended ended, the first time
	changed chan struct{}        // closed, and replaced, when streams or flow change
	flow    Flow                 // see flow.go

	// DATA bytes Data and DataBytes sent, by stream and in all; the
	// writer's alone, like the framer.
	sent     map[uint32]int64
	connSent int64
}

// StreamEnd is how the server ended a stream: with RST_STREAM, or with
// trailers (a whole response's, or a trailers-only one) carrying a gRPC
// status.
type StreamEnd struct {
	Reset   bool          // the server reset the stream
	Code    http2.ErrCode // with Reset: its code
	Status  string        // else: the trailers' grpc-status, "0" for OK
	Message string        // and their grpc-message, as sent (percent-encoded)
}

// End is what the server sent on a connection.
type End struct {
	PingAcked bool              // the server answered the Ping
	GoAway    *http2.ErrCode    // the code of the server's GOAWAY, if it sent one
	Frames    []http2.FrameType // the first 64 frames, in order
	Count     int               // every frame
	Err       error             // what ended the reads, unless the Ping's answer did
}

// pingData marks the PING that Ping sends.
var pingData = [8]byte{'r', 'a', 'w', 'h', '2'}

// New starts HTTP/2 on conn, a TCP connection or a TLS one that negotiated
// "h2": it sends the client preface and empty SETTINGS, and starts reading.
func New(conn net.Conn) (*Conn, error) {
	c := &Conn{conn: conn, w: bufio.NewWriterSize(conn, 64<<10), next: 1, done: make(chan struct{}),
		streams: make(map[uint32]StreamEnd), changed: make(chan struct{}), sent: make(map[uint32]int64),
		flow: Flow{Settings: make(map[http2.SettingID]uint32), Increments: make(map[uint32]int64)}}
	c.fr = http2.NewFramer(c.w, nil)
	c.enc = hpack.NewEncoder(&c.block)
	if _, err := c.w.WriteString(http2.ClientPreface); err != nil {
		return nil, err
	}
	if err := c.fr.WriteSettings(); err != nil {
		return nil, err
	}
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	go c.read()
	return c, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.conn.Close() }

// LocalAddr is the connection's local address, the server's peer address.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

func (c *Conn) read() {
	defer close(c.done)
	fr := http2.NewFramer(nil, c.conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		c.mu.Lock()
		if err != nil {
			c.end.Err = err
			c.mu.Unlock()
			return
		}
		if c.end.Count++; len(c.end.Frames) < 64 {
			c.end.Frames = append(c.end.Frames, f.Header().Type)
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			code := f.ErrCode
			c.end.GoAway = &code
		case *http2.PingFrame:
			if f.IsAck() && f.Data == pingData {
				c.end.PingAcked = true
				c.mu.Unlock()
				return
			}
			c.flowPing(f)
		case *http2.SettingsFrame:
			if !f.IsAck() {
				f.ForeachSetting(func(s http2.Setting) error { c.flow.Settings[s.ID] = s.Val; return nil })
				c.flowChanged()
			}
		case *http2.WindowUpdateFrame:
			c.flow.Increments[f.StreamID] += int64(f.Increment)
			c.flowChanged()
		case *http2.RSTStreamFrame:
			c.streamEnded(f.StreamID, StreamEnd{Reset: true, Code: f.ErrCode})
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				var end StreamEnd
				for _, hf := range f.RegularFields() {
					switch hf.Name {
					case "grpc-status":
						end.Status = hf.Value
					case "grpc-message":
						end.Message = hf.Value
					}
				}
				c.streamEnded(f.StreamID, end)
			}
		}
		c.mu.Unlock()
	}
}

// streamEnded records how stream id ended, unless it already has, and wakes
// WaitStream. Caller holds c.mu.
func (c *Conn) streamEnded(id uint32, end StreamEnd) {
	if _, ok := c.streams[id]; ok {
		return
	}
	c.streams[id] = end
	c.flowChanged()
}

// Ended reports how the server ended stream id, if it has so far.
func (c *Conn) Ended(id uint32) (StreamEnd, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	end, ok := c.streams[id]
	return end, ok
}

// WaitStream waits until the server has ended stream id, and returns how;
// or it returns the reader's error (or io.EOF) if the connection ended
// first, or ctx's.
func (c *Conn) WaitStream(ctx context.Context, id uint32) (StreamEnd, error) {
	for {
		c.mu.Lock()
		end, ok := c.streams[id]
		changed := c.changed
		c.mu.Unlock()
		if ok {
			return end, nil
		}
		select {
		case <-changed:
			continue
		case <-c.done:
		case <-ctx.Done():
			return StreamEnd{}, ctx.Err()
		}
		c.mu.Lock()
		end, ok = c.streams[id]
		err := c.end.Err
		c.mu.Unlock()
		if ok {
			return end, nil
		}
		if err == nil {
			err = io.EOF // the reader ended at the Ping's answer
		}
		return StreamEnd{}, err
	}
}

// Done is closed once the reader has ended: the server closed the
// connection or answered the Ping.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Wait waits for the reader to end, or ctx, and returns what it saw.
func (c *Conn) Wait(ctx context.Context) (End, error) {
	select {
	case <-c.done:
	case <-ctx.Done():
		return End{}, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.end, nil
}

// GRPCHeaders are the header fields of a gRPC call of method (such as
// "/roomcast.v1.BrokerService/Publish") to authority, followed by extra.
func GRPCHeaders(authority, method string, extra ...hpack.HeaderField) []hpack.HeaderField {
	return append([]hpack.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: "http"},
		{Name: ":path", Value: method},
		{Name: ":authority", Value: authority},
		{Name: "content-type", Value: "application/grpc"},
		{Name: "te", Value: "trailers"},
	}, extra...)
}

// Encode returns fields as a header block, encoded with the connection's
// HPACK encoder (so it must be sent, in order with the other blocks). The
// block is valid until the next call.
func (c *Conn) Encode(fields []hpack.HeaderField) []byte {
	c.block.Reset()
	for _, f := range fields {
		c.enc.WriteField(f)
	}
	return c.block.Bytes()
}

// Open opens the next stream with the header block (HEADERS, then
// CONTINUATION frames if it is over 16 KiB), ending the stream from the
// client's side if endStream, and returns its id.
func (c *Conn) Open(block []byte, endStream bool) (uint32, error) {
	const maxFrame = 16 << 10
	id := c.next
	c.next += 2
	first := block[:min(len(block), maxFrame)]
	rest := block[len(first):]
	err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: endStream, EndHeaders: len(rest) == 0})
	for err == nil && len(rest) > 0 {
		frag := rest[:min(len(rest), maxFrame)]
		rest = rest[len(frag):]
		err = c.fr.WriteContinuation(id, len(rest) == 0, frag)
	}
	return id, err
}

// Reset resets stream id with CANCEL, as a gRPC client cancelling a call.
func (c *Conn) Reset(id uint32) error { return c.fr.WriteRSTStream(id, http2.ErrCodeCancel) }

// Data sends a gRPC message (uncompressed, length-prefixed) on stream id.
func (c *Conn) Data(id uint32, msg []byte, endStream bool) error {
	frame := make([]byte, 5+len(msg))
	frame[1], frame[2], frame[3], frame[4] = byte(len(msg)>>24), byte(len(msg)>>16), byte(len(msg)>>8), byte(len(msg))
	copy(frame[5:], msg)
	for len(frame) > 0 {
		n := min(len(frame), 16<<10)
		if err := c.fr.WriteData(id, endStream && n == len(frame), frame[:n]); err != nil {
			return err
		}
		c.countSent(id, n)
		frame = frame[n:]
	}
	return nil
}

// EndStream ends stream id with an empty DATA frame, as a client ends its
// side of a call after DataBytes sent its messages.
func (c *Conn) EndStream(id uint32) error { return c.fr.WriteData(id, true, nil) }

// Frames has write send frames of any kind with the connection's framer,
// unflushed: padded ones, PRIORITY, types HTTP/2 does not define.
func (c *Conn) Frames(write func(fr *http2.Framer) error) error { return write(c.fr) }

// EmptyData sends n empty DATA frames on stream id, without ending it:
// frames that carry nothing, which a receiver still has to handle.
func (c *Conn) EmptyData(id uint32, n int) error {
	for range n {
		if err := c.fr.WriteData(id, false, nil); err != nil {
			return err
		}
	}
	return nil
}

// Ping sends a PING and flushes: once the server has read everything sent
// before it, it answers, unless it closed the connection first.
func (c *Conn) Ping() error {
	if err := c.fr.WritePing(false, pingData); err != nil {
		return err
	}
	return c.Flush()
}

// Flush sends what was written.
func (c *Conn) Flush() error { return c.w.Flush() }

// RapidReset opens up to pairs streams of a gRPC call of method, resetting
// each at once, then sends a Ping. It stops at the first error, which it
// returns (the server closed the connection), with the pairs it wrote.
func (c *Conn) RapidReset(authority, method string, pairs int) (int, error) {
	n, err := c.Pairs(authority, method, pairs)
	if err != nil {
		return n, err
	}
	return n, c.Ping()
}

// Pairs is RapidReset without the Ping: it flushes the pairs it wrote.
func (c *Conn) Pairs(authority, method string, pairs int) (int, error) {
	fields := GRPCHeaders(authority, method)
	for i := range pairs {
		id, err := c.Open(c.Encode(fields), false)
		if err == nil {
			err = c.Reset(id)
		}
		if err == nil && i%64 == 63 {
			err = c.Flush()
		}
		if err != nil {
			return i, err
		}
	}
	return pairs, c.Flush()
}
