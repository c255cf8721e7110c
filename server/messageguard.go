package server

import (
	"encoding/binary"
	"errors"
	"log/slog"
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
// for the methods whose requests are small it also reads the prefix of
// every message the client sends on them: a message announced far over its
// method's limit (messageLimits) closes the connection, with GOAWAY
// (ENHANCE_YOUR_CALM), before grpc-go has read the prefix. A gRPC client
// never sends such a message unless it is broken: the server would refuse
// it whole anyway.

// errMessageFlood ends the reads of a connection closed for a message
// announced over its method's limit.
var errMessageFlood = errors.New("server: connection closed: it announced a message over its method's limit")

// grpcPrefixLen is the length of a gRPC message's prefix: a compression
// flag and a 4-byte big-endian length.
const grpcPrefixLen = 5

// messageLimits are the largest message a client may announce on a stream
// of each method whose requests are small, by the method's :path: the
// codec's limit (decode.go), but at least announceSlack, so that a request
// a little over its limit is still refused alone, with RESOURCE_EXHAUSTED
// once read, as before; only one far over it closes the connection. Other
// methods' messages are left to grpc-go's receive limit.
func messageLimits(lim requestLimits) map[string]uint32 {
	return map[string]uint32{
		roomcastv1.BrokerService_Subscribe_FullMethodName: max(maxCommandBytes, announceSlack),
		roomcastv1.BrokerService_History_FullMethodName:   max(maxQueryBytes, announceSlack),
		roomcastv1.BrokerService_Presence_FullMethodName:  max(maxQueryBytes, announceSlack),
		roomcastv1.BrokerService_Watch_FullMethodName:     uint32(max(lim.watch, announceSlack)),
	}
}

// announceSlack is the least a message may be announced at before its
// connection is closed: four Subscribe commands' limit. A client's stream
// of such a method then holds at most this of an unfinished message (and
// its frames' overhead in grpc-go), where it could hold the receive limit.
const announceSlack = 64 << 10

// limitedStream is where the scanner is within the messages of a stream
// whose method has a limit.
type limitedStream struct {
	limit uint32
	need  uint32              // bytes of the current message still to come
	nhdr  uint8               // bytes of the next prefix held in hdr
	hdr   [grpcPrefixLen]byte // a prefix split between frames or reads
}

// maxLimitedStreamsPerConn bounds the streams a connection's scanner
// follows, times the calls a connection may have in flight: a stream is
// forgotten when the client ends or resets it, which a gRPC client does
// to each stream the server ends first, so only a client that leaves
// thousands of finished streams neither ended nor reset reaches it. It is
// closed as one that announced too much, rather than let its scanner grow.
const maxLimitedStreamsPerConn = 4

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
	"Client connections closed for announcing a request over its method's limit (a Subscribe command over 16 KiB, a History or Presence request over 4 KiB, a Watch request over its limit) before sending it, or for leaving thousands of finished streams neither ended nor reset.", nil, nil)

// blockEnded is called at the end of each header block the client sends,
// on stream id, opening it (a request's headers) or ending it (trailers),
// with the block's :path: it starts following a new stream of a method with
// a limit, and forgets one the client ends. It reports whether the
// connection may go on.
func (c *resetConn) blockEnded(id uint32, endStream bool, path string) bool {
	if _, ok := c.limited[id]; ok || endStream {
		delete(c.limited, id)
		return true
	}
	limit, ok := c.guard.messageLimits[path]
	if !ok {
		return true
	}
	if len(c.limited) >= c.guard.maxLimitedStreams {
		return false
	}
	if c.limited == nil {
		c.limited = make(map[uint32]*limitedStream)
	}
	c.limited[id] = &limitedStream{limit: limit}
	return true
}

// dataFrame sets the scanner up for a DATA frame of n bytes with flags on
// stream id: its payload is read through scanData if the stream is
// followed, skipped otherwise.
func (c *resetConn) dataFrame(id uint32, flags http2.Flags, n int) {
	s := c.limited[id]
	ending := flags.Has(http2.FlagDataEndStream)
	padded := flags.Has(http2.FlagDataPadded)
	if s == nil || n == 0 || padded && n == 1 {
		c.skip = n // nothing to read (a padded frame of one byte is all pad length)
		if s != nil && ending {
			delete(c.limited, id)
		}
		return
	}
	c.data = dataScan{stream: id, s: s, rest: n, padLenNow: padded, ending: ending}
	c.inData = true
}

// dataScan is where the scanner is within a followed stream's DATA frame.
type dataScan struct {
	stream    uint32
	s         *limitedStream
	rest      int  // the payload's bytes still to read
	padLenNow bool // the next byte is the pad length
	padLen    int
	ending    bool // the frame ends the stream
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
	k := min(len(p), d.rest-d.padLen)
	if !d.s.read(p[:k]) {
		return p, false
	}
	d.rest -= k
	p = p[k:]
	if d.rest > d.padLen {
		return p, true
	}
	c.inData = false
	c.skip = d.rest // the padding
	if d.ending {
		delete(c.limited, d.stream)
	}
	return p, true
}

// read follows a stream's messages through b, the next bytes of its DATA,
// and reports whether every prefix in it was within the limit.
func (s *limitedStream) read(b []byte) bool {
	for len(b) > 0 {
		if s.need > 0 {
			k := uint32(min(uint64(s.need), uint64(len(b))))
			s.need -= k
			b = b[k:]
			continue
		}
		k := copy(s.hdr[s.nhdr:], b)
		s.nhdr += uint8(k)
		b = b[k:]
		if s.nhdr < grpcPrefixLen {
			return true
		}
		s.nhdr = 0
		if s.need = binary.BigEndian.Uint32(s.hdr[1:]); s.need > s.limit {
			return false
		}
	}
	return true
}
