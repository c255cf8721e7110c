package server

import (
	"sync"
	"sync/atomic"

	"golang.org/x/net/http2"
)

// Streams the server ends. The message scanner (messageguard.go) counts
// the bytes of a stream's unfinished message until the client ends or
// resets the stream. But the server may end it first: a publish refused
// before its message was read, or past grpc-go's receive limit, whose
// client goes on sending. grpc-go forgets the stream and drops what it
// held of it, and would drop what still comes; a scanner that went on
// counting would blame the connection for bytes nobody holds, and a C-core
// client, which may leave such streams open for the connection's life,
// would pile them up.
//
// So a watched connection's writes are skimmed too: the frame headers of
// what grpc-go writes are read, with no copy, and the ids of the streams
// the server ends (RST_STREAM, or END_STREAM on HEADERS or DATA) are handed
// to the connection's reader, which marks their entries ended, stops
// counting them, and skips what the client sends on them after. It takes
// them at its next read: until then a quiet client's count is stale, by
// what its server-ended streams held.
//
// grpc-go writes a connection from one goroutine (its loopy writer), so
// the write scanner's state needs no lock; the ids cross to the reader
// under serverEnds' mutex.

// writeScan is where the write scanner is within the server's frames.
type writeScan struct {
	skip int // the rest of a frame's payload
	fh   frameHeader
}

// serverEnds are the streams the server ended that the reader has not yet
// taken.
type serverEnds struct {
	n     atomic.Int32 // len(ids): the reader looks without the lock
	mu    sync.Mutex
	ids   []uint32
	spare []uint32 // the slice the reader took last, to reuse
}

// scanWrite reads the frame headers of p, the next bytes the server
// writes, notes the streams they end, and adds to the control frames the
// client may send in answer (controlframes.go).
func (c *resetConn) scanWrite(p []byte) {
	w := &c.w
	var answers, sent int64
	for len(p) > 0 {
		if w.skip > 0 {
			k := min(w.skip, len(p))
			w.skip -= k
			p = p[k:]
			continue
		}
		var h []byte
		if h, p = w.fh.next(p); h == nil {
			break
		}
		w.skip = int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		t, flags := http2.FrameType(h[3]), http2.Flags(h[4])
		if t == http2.FrameData {
			sent += int64(w.skip)
			answers += answersPerSmallData
			if w.skip >= minAnsweredBytes {
				answers += answersPerData - answersPerSmallData
			}
		} else if t == http2.FramePing && !flags.Has(http2.FlagPingAck) {
			answers++
		}
		// END_STREAM is the same bit on HEADERS and DATA.
		if t == http2.FrameRSTStream || (t == http2.FrameHeaders || t == http2.FrameData) && flags.Has(http2.FlagHeadersEndStream) {
			c.ends.add(uint32(h[5]&0x7f)<<24 | uint32(h[6])<<16 | uint32(h[7])<<8 | uint32(h[8]))
		}
	}
	if answers > 0 {
		c.served.Add(answers)
	}
	if sent > 0 {
		c.sendWindow.Add(-sent)
	}
}

func (e *serverEnds) add(id uint32) {
	e.mu.Lock()
	e.ids = append(e.ids, id)
	e.n.Store(int32(len(e.ids)))
	e.mu.Unlock()
}

// takeServerEnds marks ended the entries of the streams the server ended
// since the last read, and stops counting what they held. Called by the
// reader, before it scans what it read.
func (c *resetConn) takeServerEnds() {
	if c.ends.n.Load() == 0 {
		return
	}
	e := &c.ends
	e.mu.Lock()
	ids := e.ids
	e.ids, e.spare = e.spare[:0], nil
	e.n.Store(0)
	e.mu.Unlock()
	for _, id := range ids {
		if c.inData && c.data.stream == id { // within one of its DATA frames
			c.held -= int64(c.data.st.got)
			c.data.st.got, c.data.st.ended = 0, true
			continue
		}
		if st, ok := c.kept[id]; ok && !st.ended {
			c.held -= int64(st.got)
			st.got, st.ended = 0, true
			c.kept[id] = st
		}
	}
	e.mu.Lock()
	if e.spare == nil {
		e.spare = ids[:0]
	}
	e.mu.Unlock()
}
