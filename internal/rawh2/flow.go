package rawh2

import (
	"context"
	"encoding/binary"
	"io"
	"maps"
	"slices"

	"golang.org/x/net/http2"
)

// Flow is what the server said about flow control on a connection, for a
// client that keeps to it: the settings it sent, the window increments it
// granted, and its pings.
type Flow struct {
	Settings   map[http2.SettingID]uint32 // the latest value of each setting the server sent
	Increments map[uint32]int64           // WINDOW_UPDATE increments by stream; 0 is the connection
	Pings      int                        // PINGs the server sent (grpc-go's bandwidth estimation sends them with data)
	Probed     uint64                     // the highest Probe the server answered

	unanswered [][8]byte // the server's PINGs that AnswerPings has not answered yet
}

// maxUnanswered bounds the PINGs kept for AnswerPings.
const maxUnanswered = 16

// probeTag marks the PINGs of Probe; their last 6 bytes are the number.
var probeTag = [2]byte{'p', 'r'}

// flowPing records a PING the server sent, or its answer to a Probe.
// Caller holds c.mu.
func (c *Conn) flowPing(f *http2.PingFrame) {
	if !f.IsAck() {
		c.flow.Pings++
		if len(c.flow.unanswered) < maxUnanswered { // a client that never answers keeps maxUnanswered
			c.flow.unanswered = append(c.flow.unanswered, f.Data)
		}
		c.flowChanged()
		return
	}
	if [2]byte(f.Data[:2]) == probeTag {
		var n [8]byte
		copy(n[2:], f.Data[2:])
		c.flow.Probed = max(c.flow.Probed, binary.BigEndian.Uint64(n[:]))
		c.flowChanged()
	}
}

// flowChanged wakes WaitStream and WaitProbe. Caller holds c.mu.
func (c *Conn) flowChanged() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Flow returns a copy of what the server has said about flow control so
// far.
func (c *Conn) Flow() Flow {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.flow
	f.Settings = maps.Clone(f.Settings)
	f.Increments = maps.Clone(f.Increments)
	f.unanswered = nil
	return f
}

// AnswerPings writes an acknowledgement of each PING the server sent that
// it has not answered yet (it does not flush). The reader leaves answering
// to the writer, whose methods are not safe for concurrent use.
func (c *Conn) AnswerPings() error {
	c.mu.Lock()
	pings := slices.Clone(c.flow.unanswered)
	c.flow.unanswered = c.flow.unanswered[:0]
	c.mu.Unlock()
	for _, d := range pings {
		if err := c.fr.WritePing(true, d); err != nil {
			return err
		}
	}
	return nil
}

// Probe sends PING number n (below 2^48) and flushes; the server answers
// it once it has read everything sent before it, and WaitProbe waits for
// that. Unlike Ping's, the answer does not end the reads.
func (c *Conn) Probe(n uint64) error {
	var d [8]byte
	binary.BigEndian.PutUint64(d[:], n)
	copy(d[:2], probeTag[:])
	if err := c.fr.WritePing(false, d); err != nil {
		return err
	}
	return c.Flush()
}

// WaitProbe waits until the server has answered Probe n (or a later one),
// and returns what it had said about flow control by then; or the reader's
// error (io.EOF at Ping's answer) if the connection ended first, or ctx's.
func (c *Conn) WaitProbe(ctx context.Context, n uint64) (Flow, error) {
	for {
		c.mu.Lock()
		probed, changed := c.flow.Probed, c.changed
		c.mu.Unlock()
		if probed >= n {
			return c.Flow(), nil
		}
		select {
		case <-changed:
		case <-c.done:
			c.mu.Lock()
			err, probed := c.end.Err, c.flow.Probed
			c.mu.Unlock()
			if probed >= n { // answered, then the connection ended: both were ready
				return c.Flow(), nil
			}
			if err == nil {
				err = io.EOF
			}
			return Flow{}, err
		case <-ctx.Done():
			return Flow{}, ctx.Err()
		}
	}
}

// DataBytes sends p on stream id as it is, in DATA frames of at most 16 KiB
// (the frame size HTTP/2 allows without a setting), without ending the
// stream: p may hold gRPC messages, or parts of them, that other calls
// send the rest of.
func (c *Conn) DataBytes(id uint32, p []byte) error {
	for len(p) > 0 {
		n := min(len(p), 16<<10)
		if err := c.fr.WriteData(id, false, p[:n]); err != nil {
			return err
		}
		c.countSent(id, n)
		p = p[n:]
	}
	return nil
}

// initialWindow is HTTP/2's initial window, of every stream and of the
// connection, until the server's SETTINGS and WINDOW_UPDATEs change it.
const initialWindow = 65_535

// countSent counts n bytes of DATA sent on stream id, for Credit.
func (c *Conn) countSent(id uint32, n int) {
	c.sent[id] += int64(n)
	c.connSent += int64(n)
}

// Credit is how many more bytes of DATA flow control lets the client send
// on stream id now: the smaller of what is left of the stream's window and
// of the connection's, as the server's SETTINGS and WINDOW_UPDATEs set
// them, after what Data and DataBytes sent. Until the server's SETTINGS
// arrive (WaitProbe makes sure they have), a stream's window is HTTP/2's
// initial 65,535 bytes. Like the writing methods, it is not safe to call
// concurrently with them.
func (c *Conn) Credit(id uint32) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	window := int64(initialWindow)
	if w, ok := c.flow.Settings[http2.SettingInitialWindowSize]; ok {
		window = int64(w)
	}
	stream := window + c.flow.Increments[id] - c.sent[id]
	conn := initialWindow + c.flow.Increments[0] - c.connSent
	return min(stream, conn)
}

// Changed returns a channel that is closed at the next change of what Flow,
// Credit or Ended report: a setting, a window update, a PING of the server,
// a stream's end. It is not closed when the connection ends; Done is. Take
// it before looking at them, so that no change in between goes unseen. It
// is safe for concurrent use.
func (c *Conn) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}
