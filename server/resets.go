package server

import (
	"bytes"
	"cmp"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/credentials"
)

// Rapid reset (CVE-2023-44487): a client opens a stream with HEADERS and
// cancels it at once with RST_STREAM, over and over. Each pair costs the
// client two small frames and the server a stream, a handler goroutine and
// its teardown, and since the stream is gone at once the limit on
// concurrent streams never bites. grpc-go counts nothing of it, so the
// server counts for itself: every connection's bytes pass through a
// resetConn once its transport credentials' handshake is done (plaintext
// too, through insecure credentials), which reads the 9-byte header of each
// HTTP/2 frame the client sends, skips the payload, and takes a token from
// the connection's bucket for each RST_STREAM. A connection that runs out
// is sent GOAWAY (ENHANCE_YOUR_CALM) and closed. The same scanner sizes
// the header blocks the client sends (headerguard.go), and reads the
// prefixes of the messages in their DATA (messageguard.go).
//
// The server's writes, the hot path of fan-out, go to the connection
// uncopied: only their frame headers are read, for the streams the server
// ends (serverends.go).

// Defaults of WithStreamResetRate. A gRPC client resets a stream when it
// cancels a call, when a call's deadline passes, and when the server ends a
// Subscribe stream before the client has closed its side. Measured on
// loopback with the client package: one connection publishing flat out
// (50,000 calls a second) that cancels one call in ten sends 5,000 resets a
// second; held to serve's default publish rate (10,000 a second) it would
// send 1,000. Closing every stream of a connection sends 1,000 in a few
// milliseconds, and so does a client whose streams the server ends as it
// drains. The burst lets a client that has been connected for 0.4 seconds
// cancel every call it may have in flight (DefaultMaxStreamsPerConnection)
// twice over at once. A flood of HEADERS and RST_STREAM pairs runs at
// 60,000 a second on one connection and costs the server about 10 µs of CPU
// a pair; held to the rate, it costs at most about 5% of a core per
// connection. What the default cuts off: a client that opens and closes
// streams in a tight loop (17,000 a second), which should keep one
// Subscribe stream and join and leave rooms on it.
const (
	DefaultStreamResetRate  = 5000
	DefaultStreamResetBurst = 2 * DefaultMaxStreamsPerConnection
)

// resetsAtOpen is what a new connection's bucket holds. It starts nearly
// empty and fills at the rate, so that a client that is cut off gains
// nothing by reconnecting: each connection may reset streams only as fast
// as the rate since it opened.
const resetsAtOpen = 10

// WithStreamResetRate closes a client connection that resets streams (sends
// RST_STREAM frames) faster than perSecond a second, with bursts of up to
// burst: a token bucket per connection, which holds a few tokens when the
// connection opens and fills at perSecond up to burst. The client is sent
// GOAWAY with ENHANCE_YOUR_CALM first, and the closure is logged and
// counted in roomcast_reset_flood_closes_total. This is the defence against
// HTTP/2 rapid reset (CVE-2023-44487). It applies to plaintext, to the
// credentials of WithTransportCredentials and to ServeWeb's HTTP/2
// connections, but not to credentials given with WithGRPCOptions. The default is DefaultStreamResetRate (5000) a
// second with bursts of DefaultStreamResetBurst (2000); 0 means no limit.
func WithStreamResetRate(perSecond float64, burst int) Option {
	return func(c *config) { c.resetRate, c.resetBurst = perSecond, burst }
}

// errResetFlood ends the reads of a connection closed for its resets.
var errResetFlood = errors.New("server: connection closed: it reset streams faster than the limit")

// resetGuard watches the connections of one server: their resets, and
// their header lists (headerguard.go).
type resetGuard struct {
	rate, burst    float64    // tokens a second, and the bucket's size; rate 0: no limit
	maxHeaderBytes uint32     // the header list limit; 0: not checked
	penalties      *penalties // the addresses of closed connections are penalised; nil: none
	log            *slog.Logger
	headers        headerCloses  // connections closed for their headers
	messages       messageCloses // connections closed for their announced messages
	// messageLimits are the largest messages of the methods with a limit of
	// their own, and maxKeptStreams how many streams a connection's scanner
	// keeps an entry for (messageguard.go).
	messageLimits  map[string]uint32
	maxKeptStreams int
	unfinished     *unfinishedBudget // sums the connections' unfinished messages; nil: not bounded
	frames         *frameBuckets     // the request frame rate's buckets, per address (readpace.go); nil: not paced
	framesPaced    atomic.Int64      // nanoseconds readers waited for it
	closed         atomic.Uint64     // connections closed for their resets
	lastLog        atomic.Int64      // when a closure was last logged, in Unix nanoseconds
	unlogged       atomic.Uint64     // closures since then that were not logged
}

// resetLogEvery is how often a closure is logged at most; the closures in
// between are counted in the next line.
const resetLogEvery = time.Second

// goAwayTimeout bounds the write of the GOAWAY frame sent before a
// connection is closed, which a client that does not read could block.
const goAwayTimeout = time.Second

// credentials returns creds with every connection they hand to gRPC
// watched, or creds itself when there is nothing to watch for.
func (g *resetGuard) credentials(creds credentials.TransportCredentials) credentials.TransportCredentials {
	if g.rate <= 0 && g.maxHeaderBytes == 0 {
		return creds
	}
	return &resetCreds{TransportCredentials: creds, guard: g}
}

// resetCreds are transport credentials whose server handshake returns a
// watched connection.
type resetCreds struct {
	credentials.TransportCredentials
	guard *resetGuard
}

func (c *resetCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return conn, info, err // credentials.ErrConnDispatched leaves conn to someone else
	}
	return c.guard.watch(conn, raw), info, nil
}

func (c *resetCreds) Clone() credentials.TransportCredentials {
	return &resetCreds{TransportCredentials: c.TransportCredentials.Clone(), guard: c.guard}
}

// watch returns conn, made by transport credentials from raw, with its
// reads watched.
func (g *resetGuard) watch(conn, raw net.Conn) net.Conn {
	rc := &resetConn{Conn: conn, raw: raw, guard: g, skip: len(http2.ClientPreface), tokens: min(g.burst, resetsAtOpen), last: time.Now(), answers: answersAtOpen}
	if tcp, ok := conn.(*net.TCPConn); ok {
		return watchTCP(rc, tcp)
	}
	return rc
}

// closedConn counts and logs a connection closed for its resets.
func (g *resetGuard) closedConn(peer net.Addr, resets uint64) {
	g.closed.Add(1)
	now := time.Now().UnixNano()
	last := g.lastLog.Load()
	if now-last < int64(resetLogEvery) || !g.lastLog.CompareAndSwap(last, now) {
		g.unlogged.Add(1)
		return
	}
	g.log.Warn("closed a connection that reset streams faster than the limit (rapid reset)",
		"peer", peer.String(), "resets", resets, "rate", g.rate, "burst", g.burst,
		"unlogged", g.unlogged.Swap(0))
}

// frameHeaderLen is the length of an HTTP/2 frame header: payload length
// (3 bytes), type, flags, stream id (4 bytes).
const frameHeaderLen = 9

// frameHeader gathers a frame header that may come split between reads
// or writes.
type frameHeader struct {
	buf [frameHeaderLen]byte
	n   int // bytes of it held
}

// next returns the frame header at the start of p, and the rest of p; or
// nil and an empty rest if p ends within the header, which it keeps.
func (f *frameHeader) next(p []byte) (h, rest []byte) {
	if f.n == 0 && len(p) >= frameHeaderLen {
		return p[:frameHeaderLen], p[frameHeaderLen:]
	}
	k := copy(f.buf[f.n:], p)
	f.n += k
	if f.n < frameHeaderLen {
		return nil, nil
	}
	f.n = 0
	return f.buf[:], p[k:]
}

// resetConn is a connection whose reads are scanned: for RST_STREAM frames,
// header lists over the limit and messages announced over theirs, and the
// bytes of unfinished messages; and whose writes are skimmed for the
// streams the server ends. Reads must not be concurrent, nor writes
// (grpc-go has one reader and one writer per connection); Close may come
// from anywhere, at any time, more than once.
type resetConn struct {
	net.Conn
	raw   net.Conn // beneath the transport credentials: Conn itself in plaintext
	guard *resetGuard

	// The scanner's state.
	skip   int         // bytes to skip: the rest of the preface or of a frame's payload
	fh     frameHeader // a frame header split between reads
	resets uint64      // RST_STREAM frames seen
	stream uint32      // the highest stream a HEADERS frame was seen on
	tokens float64     // the bucket
	last   time.Time   // when tokens was last topped up
	err    error       // set once the connection is closed

	// A web listener's connection (webguard.go): scanned at the frame
	// level only, once the HTTP/2 preface has come (prefaceAt of its bytes
	// so far); plain if it began with anything else (HTTP/1.1).
	web       bool
	plain     bool
	prefaceAt int
	h2        atomic.Bool  // a web connection's preface came whole: its writes are HTTP/2 frames
	readsHeld atomic.Int64 // until when holdReads holds its reads, in Unix nanoseconds

	// The header scanner's state (headerguard.go).
	mirror       *headerMirror // made at the first HEADERS frame
	inHeaders    bool          // reading the payload of a HEADERS or CONTINUATION frame
	hf           headerFrame   // where in it
	hdrStream    uint32        // the stream of the block being read
	hdrEndStream bool          // its HEADERS frame ended the stream
	inBlock      bool          // a header block is open: only its CONTINUATION may come next

	// The message scanner's state (messageguard.go).
	kept   map[uint32]streamState // the streams it keeps an entry for; nil until one
	inData bool                   // reading the payload of a followed stream's DATA frame
	data   dataScan               // where in it

	// What it holds of unfinished messages (unfinished.go): the sum of the
	// got of kept entries (but the stream of the DATA frame being read,
	// whose entry is a stale copy) and of data.st, and what the budget last
	// heard of it.
	held, reported int64
	share          *budgetShare // the budget's; set under its mu, read there or by the reader
	joined         atomic.Bool  // share was called
	budgetClosed   atomic.Bool  // the connection closed: it joins nothing after

	// Paced reads (readpace.go): the request frames of this read, what
	// the address's unfinished requests owe for it, and where the reader
	// waits.
	frames         int
	unfinishedWait time.Duration
	pause          readPause

	// The write scanner's state (serverends.go), and the control frames
	// its writes allow (controlframes.go): served, added by the writer,
	// which the reader moves into answers.
	w       writeScan
	ends    serverEnds
	served  atomic.Int64
	answers int64

	// A WINDOW_UPDATE frame's payload, split between reads, and the
	// connection's send window less its initial size: the client's
	// updates less the server's DATA (controlframes.go).
	inWindow   bool
	win        [4]byte
	winAt      int
	winStream  uint32
	sendWindow atomic.Int64

	// A plaintext web HTTP/2 connection's reads, taken from the kernel
	// webReadBuffer at a time (webreads.go).
	rbuf webReads
}

// Write writes p, noting the streams whose end it holds.
func (c *resetConn) Write(p []byte) (int, error) {
	if c.skimsWrites() {
		c.scanWrite(p)
	}
	return c.Conn.Write(p)
}

// followsMessages reports whether the scanner follows messages: it needs
// the methods, which the header blocks name.
func (g *resetGuard) followsMessages() bool {
	return g.messageLimits != nil && g.maxHeaderBytes != 0
}

func (c *resetConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.buffersReads() {
		return c.readBuffered(p)
	}
	return c.readScanned(p)
}

// readScanned reads into p from the connection and scans what it read.
func (c *resetConn) readScanned(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.scan(p[:n]) {
		return 0, c.cut()
	}
	return n, err
}

// scan reads the frame headers in p, the next bytes from the client, the
// header blocks and the followed messages, and reports whether the
// connection may go on; if not, c.err says why.
func (c *resetConn) scan(p []byte) bool {
	c.takeServerEnds()
	return c.scanFrames(p) && c.settle() && c.pace()
}

// scanFrames is scan without the state it shares with other goroutines:
// the server's ends, and the budget.
func (c *resetConn) scanFrames(p []byte) bool {
	if c.plain {
		return true
	}
	if c.web && c.prefaceAt < len(http2.ClientPreface) {
		if p = c.sniff(p); c.plain {
			return true
		}
	}
	ok := true
	for len(p) > 0 {
		if c.inHeaders {
			if p, ok = c.scanHeaders(p); !ok {
				c.err = cmp.Or(c.err, errHeaderFlood)
				return false
			}
			continue
		}
		if c.inData {
			if p, ok = c.scanData(p); !ok {
				c.err = errMessageFlood
				return false
			}
			continue
		}
		if c.inWindow {
			p = c.windowUpdate(p)
			continue
		}
		if c.skip > 0 {
			k := min(c.skip, len(p))
			c.skip -= k
			p = p[k:]
			continue
		}
		var h []byte
		if h, p = c.fh.next(p); h == nil {
			return true
		}
		n := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		id := uint32(h[5]&0x7f)<<24 | uint32(h[6])<<16 | uint32(h[7])<<8 | uint32(h[8])
		t := http2.FrameType(h[3])
		// RFC 9113, 6.10: a header block's frames come one after the other.
		// A frame that breaks into one, or a stray CONTINUATION, is a
		// connection error; it must not reach the mirror, where it would
		// follow a block that grpc-go never decodes.
		if c.guard.maxHeaderBytes != 0 && (c.inBlock != (t == http2.FrameContinuation) || c.inBlock && id != c.hdrStream) {
			c.err = errHeaderFlood
			return false
		}
		switch t {
		case http2.FrameData:
			c.dataFrame(id, http2.Flags(h[4]), n)
		case http2.FrameHeaders, http2.FrameContinuation:
			if t == http2.FrameHeaders {
				c.stream = max(c.stream, id)
				c.hdrStream, c.hdrEndStream = id, http2.Flags(h[4]).Has(http2.FlagHeadersEndStream)
			}
			if t == http2.FrameContinuation {
				c.frames++ // paced: a client sends one only past 16 KiB of headers
			}
			if c.guard.maxHeaderBytes == 0 {
				c.skip = n
				continue
			}
			c.startHeaders(t, http2.Flags(h[4]), n)
			if p, ok = c.scanHeaders(p); !ok { // an empty payload ends here
				c.err = cmp.Or(c.err, errHeaderFlood)
				return false
			}
		case http2.FrameWindowUpdate:
			if n != 4 { // a connection error for grpc-go
				c.skip = n
				continue
			}
			c.inWindow, c.winStream = true, id // counted once its increment is read (controlframes.go)
			p = c.windowUpdate(p)
		case http2.FramePing:
			c.skip = n
			c.controlFrame() // paced past what the server's writes allow
		case http2.FrameGoAway:
			c.skip = n
			c.frames++ // grpc-go ignores it; a client sends one
		case http2.FrameRSTStream:
			c.skip = n
			c.drop(id)
			c.resets++
			if c.guard.rate > 0 && !c.take() {
				c.err = errResetFlood
				return false
			}
		default: // SETTINGS, PRIORITY, PUSH_PROMISE and unknown types: a gRPC client sends next to none
			c.skip = n
			c.frames++
		}
	}
	return true
}

// take takes a token from the bucket, and reports whether there was one.
func (c *resetConn) take() bool {
	now := time.Now()
	c.tokens = min(c.guard.burst, c.tokens+c.guard.rate*now.Sub(c.last).Seconds())
	c.last = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// cut sends GOAWAY, closes the connection and returns the error its reads
// end with, c.err, which scan set. The GOAWAY may interleave with a frame
// gRPC is writing at the same time; the client then sees a broken frame
// rather than the GOAWAY, and the connection closes all the same.
func (c *resetConn) cut() error {
	debug := "too many stream resets"
	if c.err == errUnfinished { // counted, logged and penalised by the budget
		debug = "the server's budget of unfinished requests ran out, and this address held the most"
	} else if c.err == errMessageFlood {
		debug = "a message announced over its method's limit, or too many streams left open"
		c.guard.messages.add(c.guard.log, c.RemoteAddr())
		c.guard.penalties.penalise(c.RemoteAddr(), abuseMessages)
	} else if c.err == errHeaderFlood {
		debug = "header list over the limit, or malformed"
		c.guard.headers.add(c.guard.log, c.RemoteAddr(), c.guard.maxHeaderBytes)
		c.guard.penalties.penalise(c.RemoteAddr(), abuseHeaders)
	} else {
		c.guard.closedConn(c.RemoteAddr(), c.resets)
		c.guard.penalties.penalise(c.RemoteAddr(), abuseResets)
	}
	var b bytes.Buffer
	http2.NewFramer(&b, nil).WriteGoAway(c.stream, http2.ErrCodeEnhanceYourCalm, []byte(debug))
	c.Conn.SetWriteDeadline(time.Now().Add(goAwayTimeout))
	c.Conn.Write(b.Bytes())
	c.Close()
	return c.err
}
