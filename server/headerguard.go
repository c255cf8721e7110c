package server

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The header bomb: a client inserts one large entry into the connection's
// HPACK table and then sends header blocks that reference it thousands of
// times, a byte each. grpc-go refuses each such stream (its header list is
// over grpc.MaxHeaderListSize) but keeps the connection and decodes every
// block in full to keep its HPACK state, so a few kilobytes on the wire cost
// it milliseconds of CPU, stream after stream.
//
// The resetConn that watches a connection's reads (resets.go) also keeps a
// mirror of the client's header compression state: it feeds each header
// block fragment, in order, to an HPACK decoder of its own (a block that
// repeats, byte for byte, the last one decoded whole, when that one held
// only one-byte indexed fields, is not decoded again: it changes nothing
// in the table and decodes to the same list), sums the decoded list as
// grpc-go does, and when a block goes over the server's
// limit, sends GOAWAY (ENHANCE_YOUR_CALM) and closes the connection before
// grpc-go has read that block. A client that sends one list over the limit
// is either broken or attacking: a grpc-go client learns the limit from the
// server's SETTINGS and fails such a call itself.

// initialHeaderTableSize is the HPACK dynamic table size of a connection
// (SETTINGS_HEADER_TABLE_SIZE): grpc-go's server never announces another,
// so clients may use up to the protocol's initial 4096 bytes.
const initialHeaderTableSize = 4096

// errHeaderFlood ends the reads of a connection closed for its headers.
var errHeaderFlood = errors.New("server: connection closed: it sent a header list over the limit, or a malformed header block")

// headerMirror decodes a connection's header blocks as grpc-go will, to
// size them first. It is made at the connection's first HEADERS frame and
// used by its reader only.
type headerMirror struct {
	dec  *hpack.Decoder
	max  uint32 // the header list limit
	size uint32 // the block's fields so far, as counted against max
	// trailerSize counts the values of "trailer" fields apart, as
	// golang.org/x/net/http2 does, each with its own budget of max.
	trailerSize uint32
	over        bool // the block went over max
	// repeat is the last block the mirror decoded, if it came whole in one
	// HEADERS frame, was within the limit and held only one-byte indexed
	// fields, and the mirror has decoded nothing since (repeated). Such a
	// block changes nothing in the HPACK table, so the same bytes again
	// decode to the same list: a client's calls repeat their header block
	// byte for byte once their fields are in the table, and the mirror
	// compares them rather than decode them again.
	repeat   []byte
	repeated bool
	// path is the :path of the block decoded last ("" for none), which a
	// repeat of it has too; open says a block is being decoded.
	path string
	open bool
}

func newHeaderMirror(max uint32) *headerMirror {
	m := &headerMirror{max: max}
	m.dec = hpack.NewDecoder(initialHeaderTableSize, m.field)
	// grpc-go's limit on one string is the list's; past it, its decoder
	// fails the connection.
	m.dec.SetMaxStringLength(int(max))
	return m
}

// field counts one decoded field, with golang.org/x/net/http2's arithmetic
// (readMetaFrame), so that a block is over here exactly when it is there.
// It counts invalid fields too, which grpc-go stops counting at (and refuses
// the stream for): such a block is cut only if it is over the limit anyway.
func (m *headerMirror) field(f hpack.HeaderField) {
	if f.Name == ":path" {
		m.path = f.Value
	}
	sum, size := &m.size, f.Size()
	if f.Name == "trailer" {
		n := uint32(strings.Count(f.Value, ",") + 1)
		sum, size = &m.trailerSize, uint32(len(f.Value))-n+1+n*hpack.HeaderField{}.Size()
	}
	if size > m.max-*sum {
		m.over = true
		// Stop Write at the next field rather than parse the rest of the
		// fragment: a bomb's fragment holds thousands more references.
		// Every field of the table names has a longer name than this, and
		// the mirror is not used after a block goes over.
		m.dec.SetMaxStringLength(1)
		return
	}
	*sum += size
}

// write feeds the next piece of a block fragment, and reports whether the
// block is still within the limit and well formed. A block that is not ends
// the connection (grpc-go's decoder would end it for a malformed one too,
// with COMPRESSION_ERROR), so the mirror is not used after that.
func (m *headerMirror) write(p []byte) bool {
	m.repeated = false
	if !m.open {
		m.open, m.path = true, ""
	}
	_, err := m.dec.Write(p)
	return err == nil && !m.over
}

// block does what write then end do for b, a whole block that came in one
// HEADERS frame: but for the repeat of the last such block, which it
// passes as it passed that one, without decoding it.
func (m *headerMirror) block(b []byte) bool {
	if m.repeated && bytes.Equal(b, m.repeat) {
		return true
	}
	if !m.write(b) || !m.end() {
		return false
	}
	if indexedOnly(b) {
		m.repeat, m.repeated = append(m.repeat[:0], b...), true
	}
	return true
}

// indexedOnly reports whether block holds only indexed fields of one byte
// (RFC 7541, 6.1: the high bit set, an index from 1 to 126), which add
// nothing to the table and resize nothing.
func indexedOnly(block []byte) bool {
	for _, c := range block {
		if c <= 0x80 || c == 0xff {
			return false
		}
	}
	return true
}

// end ends a block (END_HEADERS), and reports whether it was well formed.
func (m *headerMirror) end() bool {
	m.size, m.trailerSize, m.open = 0, 0, false
	return m.dec.Close() == nil
}

// headerFrame is where the scanner is within the payload of a HEADERS or
// CONTINUATION frame, whose block fragment it feeds to the mirror.
type headerFrame struct {
	prefix    int  // bytes before the fragment still to read: pad length, priority
	padLenNow bool // the next prefix byte is the pad length
	padLen    int  // the frame's padding
	rest      int  // the payload's bytes after the prefix
	frag      int  // the fragment's bytes still to feed; -1 until the prefix is read
	endBlock  bool // END_HEADERS: the block ends with this frame
	whole     bool // a HEADERS frame with END_HEADERS, none of whose fragment was fed yet
}

// startHeaders sets up the scanner for the payload of a HEADERS or
// CONTINUATION frame of n bytes with flags.
func (c *resetConn) startHeaders(t http2.FrameType, flags http2.Flags, n int) {
	if c.mirror == nil {
		c.mirror = newHeaderMirror(c.headerLimit())
	}
	f := headerFrame{rest: n, frag: -1, endBlock: flags.Has(http2.FlagHeadersEndHeaders)}
	f.whole = t == http2.FrameHeaders && f.endBlock
	c.inBlock = !f.endBlock
	if t == http2.FrameHeaders {
		if flags.Has(http2.FlagHeadersPadded) {
			f.prefix, f.padLenNow = 1, true
		}
		if flags.Has(http2.FlagHeadersPriority) {
			f.prefix += 5 // stream dependency and weight
		}
	}
	c.hf = f
	c.inHeaders = true
}

// scanHeaders consumes the next bytes of a header frame's payload from p,
// and returns the rest of p and whether the connection may go on. It is
// called only while c.inHeaders, and clears it at the payload's end.
func (c *resetConn) scanHeaders(p []byte) ([]byte, bool) {
	f := &c.hf
	if f.prefix > f.rest {
		return p, false // shorter than its own prefix: a connection error
	}
	for f.prefix > 0 && len(p) > 0 {
		if f.padLenNow {
			f.padLen, f.padLenNow = int(p[0]), false
		}
		f.prefix--
		f.rest--
		p = p[1:]
	}
	if f.prefix > 0 {
		return p, true
	}
	if f.frag < 0 {
		if f.frag = f.rest - f.padLen; f.frag < 0 {
			return p, false // padding past the payload: the frame is refused
		}
	}
	if f.whole && f.frag <= len(p) { // the whole block, here: see block
		if !c.mirror.block(p[:f.frag]) {
			return p, false
		}
		if !c.blockEnded(c.hdrStream, c.hdrEndStream, c.mirror.path) {
			c.err = errMessageFlood
			return p, false
		}
		f.rest -= f.frag
		p = p[f.frag:]
		c.inHeaders = false
		c.skip = f.rest // the padding
		return p, true
	}
	f.whole = false // its fragment split between reads: decoded as it comes
	if k := min(f.frag, len(p)); k > 0 {
		if !c.mirror.write(p[:k]) {
			return p, false
		}
		f.frag -= k
		f.rest -= k
		p = p[k:]
	}
	if f.frag > 0 {
		return p, true
	}
	c.inHeaders = false
	c.skip = f.rest // the padding
	if f.endBlock {
		if !c.mirror.end() {
			return p, false
		}
		if !c.blockEnded(c.hdrStream, c.hdrEndStream, c.mirror.path) {
			c.err = errMessageFlood
			return p, false
		}
	}
	return p, true
}

// closeCounter counts the connections closed for one kind of abuse, and
// rations their log lines.
type closeCounter struct {
	closed   atomic.Uint64
	lastLog  atomic.Int64 // when a closure was last logged, in Unix nanoseconds
	unlogged atomic.Uint64
}

// add counts a closure and reports whether to log it, at most once every
// resetLogEvery, with the closures not logged since the last line.
func (c *closeCounter) add() (logIt bool, unlogged uint64) {
	c.closed.Add(1)
	return c.logNow()
}

// logNow reports whether to log closures counted already: at most once
// every resetLogEvery, with the times not logged since the last line.
func (c *closeCounter) logNow() (logIt bool, unlogged uint64) {
	now := time.Now().UnixNano()
	last := c.lastLog.Load()
	if now-last < int64(resetLogEvery) || !c.lastLog.CompareAndSwap(last, now) {
		c.unlogged.Add(1)
		return false, 0
	}
	return true, c.unlogged.Swap(0)
}

// headerCloses counts and logs the connections closed for their headers.
type headerCloses struct{ closeCounter }

func (h *headerCloses) add(log *slog.Logger, peer net.Addr, limit uint32) {
	if logIt, unlogged := h.closeCounter.add(); logIt {
		log.Warn("closed a connection that sent a header list over the limit (--max-header-bytes), or a malformed header block",
			"peer", peer.String(), "limit", limit, "unlogged", unlogged)
	}
}

var headerClosesDesc = prometheus.NewDesc("roomcast_header_flood_closes_total",
	"Client connections closed for sending a header list over --max-header-bytes (a header bomb), or a header block that could not be decoded.", nil, nil)

// Describe implements prometheus.Collector.
func (g *resetGuard) Describe(ch chan<- *prometheus.Desc) {
	ch <- headerClosesDesc
	ch <- messageClosesDesc
	ch <- framesPacedDesc
	if g.unfinished != nil {
		g.unfinished.describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (g *resetGuard) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(headerClosesDesc, prometheus.CounterValue, float64(g.headers.closed.Load()))
	ch <- prometheus.MustNewConstMetric(messageClosesDesc, prometheus.CounterValue, float64(g.messages.closed.Load()))
	ch <- prometheus.MustNewConstMetric(framesPacedDesc, prometheus.CounterValue, time.Duration(g.framesPaced.Load()).Seconds())
	if g.unfinished != nil {
		g.unfinished.collect(ch)
	}
}
