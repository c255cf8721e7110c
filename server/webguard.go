package server

import (
	"crypto/tls"
	"net"
	"time"

	"golang.org/x/net/http2"
)

// The web listener's connections pass through the same scanner as the gRPC
// port's (resets.go), at the frame level only. net/http's HTTP/2 server
// counts none of what the scanner limits: measured on the web listener
// before (go run ./internal/attack --port web), rapid reset cost the server
// 6.6 s of CPU in 5 s with no GOAWAY, the header bomb 8.9 s, and frames
// that carry nothing 9.6 s, with a gRPC client's p99 18 to 474 times its
// baseline. So a web connection that speaks HTTP/2 has its resets limited,
// its header lists sized by the HPACK mirror (cut past twice net/http's
// limit: webHeaderListCut), and its request frames paced
// in its address's bucket, shared with its gRPC connections.
//
// What the scanner does not do there: follow messages. Connect's unary
// bodies have no gRPC length prefix, so the message rules would misread
// them; a web request's size is held by connect-go's read limit instead.
// But it counts what each request body holds until the client ends it (or
// resets it, or the server ends the stream: its writes are skimmed, as the
// gRPC port's), toward the server's budget of unfinished requests
// (unfinished.go): connect-go reads a unary request whole before it
// decodes it, so 1000 publishes announced at 1 MiB and held short of their
// end took about 2.6 GiB on the web listener (attack (m)).
// The DATA frames it paces are those that carry little: padded ones,
// those under webDataFrameMin that do not end their stream, and any on a
// stream whose request body is not under way (a browser's
// request body comes in one DATA frame or in frames of 16 KiB, the last
// ending the stream). An HTTP/1.1 connection, which begins with anything
// but the HTTP/2 preface, is not scanned: it carries one request at a time,
// whose headers net/http bounds.
//
// Over TLS the server terminates TLS itself, beneath the scanner, and hands
// net/http the decrypted connection as a plaintext one that may speak
// HTTP/2 with prior knowledge: a client that negotiated h2 by ALPN sends the
// preface at once. The handlers never read Request.TLS.

// webDataFrameMin is the payload under which an unpadded DATA frame that
// does not end its stream counts as a request frame on the web listener.
const webDataFrameMin = 1024

// webHeaderListSlack is what net/http adds to MaxHeaderBytes for an
// HTTP/2 header list's limit (10 fields of 32 bytes of overhead).
const webHeaderListSlack = 10 * 32

// webHeaderListCut is how many times net/http's limit a web header list
// may reach before the mirror cuts the connection. net/http answers a list
// over its limit with 431 and keeps the connection, and a browser's may go
// over it (its cookies are the host's, whatever the port): such a client
// should get the 431, not lose its connection and have its address
// penalised. A bomb decodes to megabytes and is cut all the same.
const webHeaderListCut = 2

// webListener returns lis with each connection it accepts watched, beneath
// TLS with cfg unless cfg is nil.
func (g *resetGuard) webListener(lis net.Listener, cfg *tls.Config) net.Listener {
	return &webGuardedListener{Listener: lis, guard: g, tls: cfg}
}

type webGuardedListener struct {
	net.Listener
	guard *resetGuard
	tls   *tls.Config // nil: plaintext
}

func (l *webGuardedListener) Accept() (net.Conn, error) {
	raw, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	conn := raw
	if l.tls != nil {
		conn = tls.Server(raw, l.tls)
	}
	if l.guard.rate <= 0 && l.guard.maxHeaderBytes == 0 && l.guard.frames == nil {
		return conn, nil
	}
	return &resetConn{Conn: conn, raw: raw, guard: l.guard, web: true,
		tokens: min(l.guard.burst, resetsAtOpen), last: time.Now(), answers: answersAtOpen}, nil
}

// sniff matches the start of a web connection against the HTTP/2 preface
// and returns what follows it in p; on a mismatch it marks the connection
// plain (HTTP/1.1) and returns nothing.
func (c *resetConn) sniff(p []byte) []byte {
	k := min(len(p), len(http2.ClientPreface)-c.prefaceAt)
	if string(p[:k]) != http2.ClientPreface[c.prefaceAt:c.prefaceAt+k] {
		c.plain = true
		return nil
	}
	if c.prefaceAt += k; c.prefaceAt == len(http2.ClientPreface) {
		c.h2.Store(true) // before net/http hears of it, so before its first write
	}
	return p[k:]
}

// webDataFrame is dataFrame for a web connection, on stream id: it counts
// the frames that carry little, and those on a stream whose body is not
// under way, and what the stream's unfinished request
// body holds; it skips every payload.
func (c *resetConn) webDataFrame(id uint32, flags http2.Flags, n int) {
	ending := flags.Has(http2.FlagDataEndStream)
	st, kept := c.kept[id]
	// A frame on a stream with no body under way (closed, never opened, or
	// ended by the server) is counted whatever it holds: net/http answers
	// each with RST_STREAM.
	if !kept || st.ended || flags.Has(http2.FlagDataPadded) || !ending && n < webDataFrameMin {
		c.frames++
	}
	c.skip = n
	switch {
	case !kept:
	case ending:
		c.drop(id)
	case !st.ended:
		st.got += uint64(n)
		c.held += int64(n)
		c.kept[id] = st
	}
}

// holdReads holds the connection's reads for d from now (or longer, if
// held longer already): the pause the tap gives a refused call, which on
// the gRPC port holds the connection's reader, whose goroutine runs the
// tap. Called from any goroutine; the reader waits it out in pace.
func (c *resetConn) holdReads(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		old := c.readsHeld.Load()
		if old >= until || c.readsHeld.CompareAndSwap(old, until) {
			return
		}
	}
}

// headerLimit is the header list limit the mirror holds the connection to.
func (c *resetConn) headerLimit() uint32 {
	if c.web {
		return uint32(min(webHeaderListCut*(uint64(c.guard.maxHeaderBytes)+webHeaderListSlack), 1<<32-1))
	}
	return c.guard.maxHeaderBytes
}
