package server

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"math"
	"math/bits"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Announced messages: grpc-go reads a request by its 5-byte gRPC prefix,
// and while a handler waits for a message of L bytes it lets the client
// send all of them, past the stream's receive window if need be, holding
// what came until the message is whole. L may be anything up to the
// server's receive limit, the message limit (1 MiB), whatever the method:
// the codec refuses a Subscribe command over 16 KiB only once it is read.
// So a client could announce 1 MiB on each of a credential's thousand
// Subscribe streams, send all but its last byte, and have the server hold
// a gigabyte for as long as it liked.
//
// The scanner that watches a connection's reads (resets.go) knows each
// stream's method from its header block (headerguard.go decodes it), so
// for the methods whose requests are small, every method but the
// publishes, it also reads the prefix of every message the client sends
// on them: a message announced far over its method's limit closes the
// connection, with GOAWAY (ENHANCE_YOUR_CALM), before grpc-go has read the
// prefix. A gRPC client never sends such a message unless it is broken:
// the server would refuse it whole anyway.

// errMessageFlood ends the reads of a connection closed for a message
// announced over its method's limit.
var errMessageFlood = errors.New("server: connection closed: it announced a message over its method's limit")

// grpcPrefixLen is the length of a gRPC message's prefix: a compression
// flag and a 4-byte big-endian length.
const grpcPrefixLen = 5

// Which streams the scanner follows, and what it keeps of each. Every
// method's requests but the publishes' are small, so every stream is
// followed at announceSlack unless its header block named a method with a
// limit of its own: Publish and PublishStream, whose messages may be the
// receive limit, are followed with no limit on what they announce, only so
// that what their unfinished messages hold is counted (unfinished.go),
// and Watch is followed at its limit. The scanner keeps an entry only for
// a stream of those methods, from its headers until the client ends or
// resets it, and for a stream whose message goes on past the DATA frame it
// ended in (until one ends at a frame's end); a stream of the other
// methods between messages costs nothing kept. A stream the server ended
// (serverends.go) keeps its entry, marked ended, until the client ends or
// resets it too: a client other than grpc-go's may do neither (Python's
// grpcio, on the gRPC C core, was seen to leave them, as HTTP/2 lets it
// after the server's RST_STREAM), and what it still sends on it must be
// skipped, not read as messages. Past maxKeptStreams entries the oldest
// ended entry is forgotten, else the oldest publisher's between messages
// (its stream, if it still lives, is then followed at announceSlack); with
// none to forget, the connection is closed.

// unlimited is the limit of the streams whose messages are counted but not
// refused by what they announce: grpc-go refuses a message over its
// receive limit by its prefix, and ends the stream.
const unlimited = math.MaxUint32

// messageLimits are the largest message a client may announce on a stream
// of the methods named, by their :path: unlimited for the publishes; the
// streams of every other method are followed at announceSlack. A request
// over the codec's limit (decode.go) but within it is still refused alone,
// with RESOURCE_EXHAUSTED once read, as before; only one far over it
// closes the connection.
func messageLimits(lim requestLimits) map[string]uint32 {
	return map[string]uint32{
		roomcastv1.BrokerService_Publish_FullMethodName:       unlimited,
		roomcastv1.BrokerService_PublishStream_FullMethodName: unlimited,
		roomcastv1.BrokerService_Watch_FullMethodName:         uint32(max(lim.watch, announceSlack)),
	}
}

// announceSlack is the most a message of most methods may be announced at
// before its connection is closed: four Subscribe commands' limit, sixteen
// History or Presence requests', and far over any health check's or
// reflection request's. A stream of those methods then holds at most this
// of an unfinished message (and its frames' overhead in grpc-go), where it
// could hold the receive limit.
const announceSlack = 64 << 10

// streamState is what the scanner keeps of a stream: how far it is within
// its messages, and their limit.
type streamState struct {
	limit uint32
	need  uint32              // bytes of the current message still to come
	got   uint64              // what the current message holds in grpc-go (frameCost); 0 between messages
	nhdr  uint8               // bytes of the next prefix held in hdr
	hdr   [grpcPrefixLen]byte // a prefix split between frames or reads
	ended bool                // the server ended the stream: what comes on it is skipped
}

// idle reports whether the stream is between messages.
func (st *streamState) idle() bool { return st.need == 0 && st.nhdr == 0 }

// maxKeptStreamsPerConn bounds the streams a connection's scanner keeps an
// entry for, times the calls a connection may have in flight, so that its
// scanner cannot grow: past it an ended stream's entry, or a publisher's
// between messages, is forgotten, and with none to forget the connection
// is closed as one that announced too much. Only a client that leaves
// thousands of streams within a message, or between messages of methods
// other than the publishes, on one connection reaches it.
const maxKeptStreamsPerConn = 4

// messageCloses counts and logs the connections closed for their
// announced messages.
type messageCloses struct{ closeCounter }

func (m *messageCloses) add(log *slog.Logger, peer net.Addr) {
	if logIt, unlogged := m.closeCounter.add(); logIt {
		log.Warn("closed a connection that announced a message over its method's limit, or left too many streams open",
			"peer", peer.String(), "unlogged", unlogged)
	}
}

var messageClosesDesc = prometheus.NewDesc("roomcast_message_size_closes_total",
	"Client connections closed for announcing a request far over its method's limit before sending it (past 64 KiB for every method but Publish, PublishStream and Watch, a Watch request past its limit), or for leaving thousands of streams within a message, or of methods other than the publishes open between messages.", nil, nil)

// blockEnded is called at the end of each header block the client sends,
// on stream id, opening it (a request's headers) or ending it (trailers),
// with the block's :path. It reports whether the connection may go on.
func (c *resetConn) blockEnded(id uint32, endStream bool, path string) bool {
	if _, ok := c.kept[id]; ok || endStream {
		c.drop(id)
		return true
	}
	limit, ok := c.guard.messageLimits[path]
	if c.web {
		limit, ok = unlimited, true // every request body counted, none followed (webguard.go)
	}
	if !ok {
		return true // followed at announceSlack, with nothing kept
	}
	return c.keep(id, streamState{limit: limit})
}

// drop forgets stream id, which the client ended or reset: grpc-go drops
// what it held of the stream's message.
func (c *resetConn) drop(id uint32) {
	if st, ok := c.kept[id]; ok {
		c.held -= int64(st.got)
		delete(c.kept, id)
	}
}

// keep keeps st as stream id's, and reports whether the connection may
// go on: false past maxKeptStreams, when no entry can be forgotten for it.
func (c *resetConn) keep(id uint32, st streamState) bool {
	if _, ok := c.kept[id]; !ok && len(c.kept) >= c.guard.maxKeptStreams && !c.forgetOne() {
		return false
	}
	if c.kept == nil {
		c.kept = make(map[uint32]streamState)
	}
	c.kept[id] = st
	return true
}

// forgetOne forgets the ended stream of the lowest id, most likely one the
// server ended and its client left (see above), or else the publisher's of
// the lowest id that is between messages, and reports whether there was
// one. On the gRPC port neither holds anything counted; a web stream's
// entry may (its body so far: webguard.go), which drop takes off, though
// net/http's limit on streams, a quarter of maxKeptStreams, keeps a web
// connection from reaching this.
func (c *resetConn) forgetOne() bool {
	oldest, found, ended := uint32(0), false, false
	for id, st := range c.kept {
		switch {
		case st.ended && (!ended || id < oldest):
			oldest, found, ended = id, true, true
		case !ended && st.limit == unlimited && st.idle() && (!found || id < oldest):
			oldest, found = id, true
		}
	}
	if found {
		c.drop(oldest) // a web stream's entry may hold something (webguard.go)
	}
	return found
}

// dataFrame sets the scanner up for a DATA frame of n bytes with flags on
// stream id: its payload is read through scanData if the stream is
// followed, skipped otherwise.
func (c *resetConn) dataFrame(id uint32, flags http2.Flags, n int) {
	if c.web {
		c.webDataFrame(id, flags, n)
		return
	}
	if c.guard.messageLimits == nil || c.guard.maxHeaderBytes == 0 {
		c.skip = n // not following messages: without the header blocks, no method is known
		return
	}
	st, kept := c.kept[id]
	if !kept {
		st = streamState{limit: announceSlack}
	}
	ending := flags.Has(http2.FlagDataEndStream)
	padded := flags.Has(http2.FlagDataPadded)
	if st.limit != unlimited || st.ended || n == 0 || padded && n == 1 {
		c.frames++ // paced (readpace.go); a publish's frame is counted at its end, unless a message begins in it
	}
	if st.ended || n == 0 || padded && n == 1 {
		c.skip = n // nothing to read (a padded frame of one byte is all pad length)
		if kept && ending {
			c.drop(id)
		}
		return
	}
	c.data = dataScan{stream: id, st: st, rest: n, cost: frameCost(n), padLenNow: padded, ending: ending}
	c.inData = true
}

// dataScan is where the scanner is within a followed stream's DATA frame.
type dataScan struct {
	stream    uint32
	st        streamState // the stream's, kept again at the frame's end if need be
	rest      int         // the payload's bytes still to read
	padLenNow bool        // the next byte is the pad length
	padLen    int
	ending    bool   // the frame ends the stream
	cost      uint64 // what grpc-go holds of the frame: frameCost
	completed bool   // a message ended within the frame
	began     bool   // a message began within the frame: its prefix ended in it
}

// What grpc-go holds of a DATA frame of n bytes (its padding too): a
// buffer of its own for the payload, from its pool (power-of-two classes
// from 256 bytes) past mem's pooling threshold of 1 KiB, made to measure
// below it, and the frame's bookkeeping on the stream's receive queue.
// A message counts the frames it arrived in at their cost, not its bytes,
// so that one sent a byte a frame, padded, is not a hundred times cheaper
// to hold than it is (readDataFrame and handleData in grpc-go 1.85).
const (
	poolingThreshold = 1 << 10
	frameBookkeeping = 64
)

func frameCost(n int) uint64 {
	if n > poolingThreshold {
		n = 1 << bits.Len(uint(n-1))
	}
	return uint64(n) + frameBookkeeping
}

// scanData consumes the next bytes of a followed DATA frame's payload from
// p, and returns the rest of p and whether the connection may go on. It is
// called only while c.inData, and clears it at the payload's data's end.
func (c *resetConn) scanData(p []byte) ([]byte, bool) {
	d := &c.data
	if d.padLenNow {
		d.padLen, d.padLenNow = int(p[0]), false
		d.rest--
		p = p[1:]
		if d.padLen > d.rest {
			return p, false // padding past the payload: a connection error
		}
	}
	if d.st.ended { // by the server, since the frame began (takeServerEnds)
		c.inData = false
		c.skip = d.rest
		if d.ending {
			delete(c.kept, d.stream)
			return p, true
		}
		return p, c.keep(d.stream, d.st)
	}
	k := min(len(p), d.rest-d.padLen)
	completed, began, ok := d.st.read(p[:k])
	if !ok {
		return p, false
	}
	d.completed = d.completed || completed
	d.began = d.began || began
	d.rest -= k
	p = p[k:]
	if d.rest > d.padLen {
		return p, true
	}
	c.inData = false
	c.skip = d.rest // the padding
	if d.st.limit == unlimited && !d.began {
		c.frames++ // a publish's frame that begins no message: a piece, or nothing
	}
	// The frame is read: the message it ends in holds it, and the frames
	// before it unless one ended within it.
	got := d.st.got
	switch {
	case d.st.idle():
		d.st.got = 0
	case d.completed:
		d.st.got = d.cost
	default:
		d.st.got += d.cost
	}
	c.held += int64(d.st.got) - int64(got)
	switch {
	case d.ending:
		c.held -= int64(d.st.got)
		delete(c.kept, d.stream)
	case d.st.idle() && d.st.limit == announceSlack:
		delete(c.kept, d.stream) // nothing to keep
	case !c.keep(d.stream, d.st):
		c.held -= int64(d.st.got) // the connection is closed
		return p, false
	}
	return p, true
}

// read follows a stream's messages through b, the next bytes of its DATA,
// and reports whether a message ended in it, whether one began in it (its
// prefix ended there), and whether every prefix in it was within the
// limit.
func (s *streamState) read(b []byte) (completed, began, ok bool) {
	for len(b) > 0 {
		if s.need > 0 {
			k := uint32(min(uint64(s.need), uint64(len(b))))
			s.need -= k
			b = b[k:]
			completed = completed || s.need == 0
			continue
		}
		k := copy(s.hdr[s.nhdr:], b)
		s.nhdr += uint8(k)
		b = b[k:]
		if s.nhdr < grpcPrefixLen {
			return completed, began, true
		}
		s.nhdr = 0
		began = true
		if s.need = binary.BigEndian.Uint32(s.hdr[1:]); s.need > s.limit {
			return completed, began, false
		}
		completed = completed || s.need == 0
	}
	return completed, began, true
}
