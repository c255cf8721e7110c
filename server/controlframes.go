package server

import "encoding/binary"

// Control frames: WINDOW_UPDATE and PING. A client sends them as it reads
// what the server writes: WINDOW_UPDATEs as its windows drain, and grpc-go
// a BDP PING on the DATA it gets. grpc-go answers a PING with a write and
// hands every WINDOW_UPDATE to its writer, and counts neither: its
// keepalive policy strikes only a PING that comes when the server has
// written nothing since the last. A flood of both, as fast as the server
// read them, with no call, cost 8.8 s of CPU in 5 and the bystander's p99
// went up 90 times (issue #13 (o)); net/http's HTTP/2 server on the web
// listener, as much.
//
// Pacing them all at the request frame rate would slow a fast reader's
// deliveries: its WINDOW_UPDATEs are what let the server write more. So
// each connection earns an allowance from what the server writes it,
// read off the write skim (serverends.go): for each DATA frame,
// answersPerData if it carries at least minAnsweredBytes (a stream's
// WINDOW_UPDATE, the connection's, a BDP PING), answersPerSmallData if
// less (grpc-go's client answers a small one with a BDP PING and the
// connection's WINDOW_UPDATE of what it has read so far, a few bytes);
// one for each PING the server sends (its answer); answersAtOpen to
// begin with. Only the control frames past it are counted as request
// frames and paced (readpace.go), in the address's bucket. The allowance
// banks at most maxAnswers, so that a connection that has been read from
// for hours cannot spend it in one flood.
//
// A client that lets a window run out and opens it a byte at a time has
// the server write a DATA frame of one byte for each WINDOW_UPDATE: a
// review made 548,000 such rounds in 5 s on one connection, 3.7 s of the
// server's CPU, each round earning what it spent. So a WINDOW_UPDATE of
// less than minAnsweredBytes is always counted when it opens a stream's
// window (a reader opens those by kilobytes), or the connection's while
// what the server may send on it is under minOpenWindow: the scanner
// keeps that window, the client's updates in and the server's DATA
// frames out. GOAWAY, which grpc-go ignores and a client sends once, is a
// request frame too.
//
// Without the write skim (the header limit off) the allowance cannot be
// earned, and WINDOW_UPDATE and PING frames are not counted, as before.

const (
	// answersPerData is how many control frames a DATA frame the server
	// writes allows if it carries minAnsweredBytes or more, and
	// answersPerSmallData if less.
	answersPerData      = 3
	answersPerSmallData = 2
	minAnsweredBytes    = 1 << 10
	// minOpenWindow is the connection's send window under which its
	// client's small WINDOW_UPDATEs are counted: a quarter of the window
	// every connection starts with.
	minOpenWindow = initialConnWindow / 4
	// initialConnWindow is an HTTP/2 connection's send window at its
	// start (RFC 9113, 6.9.2); only WINDOW_UPDATE frames change it.
	initialConnWindow = 65535
	// answersAtOpen is a connection's allowance before the server writes:
	// the WINDOW_UPDATE a client sends after its preface, and its
	// keepalive PINGs of the first minutes.
	answersAtOpen = 32
	// maxAnswers bounds what an allowance banks.
	maxAnswers = 4096
)

// controlFrame counts a WINDOW_UPDATE or PING frame the client sent
// against its allowance, and past it as a request frame to pace.
func (c *resetConn) controlFrame() {
	if c.skimsWrites() {
		c.answer()
	}
}

// answer spends one of the allowance's frames, or counts a request frame
// once it is spent.
func (c *resetConn) answer() {
	if c.answers <= 0 {
		c.answers = min(c.answers+c.served.Swap(0), maxAnswers)
	}
	if c.answers > 0 {
		c.answers--
		return
	}
	c.frames++
}

// windowUpdate scans the payload of a WINDOW_UPDATE frame, which may come
// split between reads, and counts the frame once it has its increment. It
// returns the rest of p.
func (c *resetConn) windowUpdate(p []byte) []byte {
	if c.winAt == 0 && len(p) >= 4 {
		c.inWindow = false
		c.windowIncrement(binary.BigEndian.Uint32(p))
		return p[4:]
	}
	k := copy(c.win[c.winAt:], p)
	if c.winAt += k; c.winAt == len(c.win) {
		c.winAt, c.inWindow = 0, false
		c.windowIncrement(binary.BigEndian.Uint32(c.win[:]))
	}
	return p[k:]
}

// windowIncrement counts a WINDOW_UPDATE frame of increment inc, on the
// stream c.winStream (0: the connection).
func (c *resetConn) windowIncrement(inc uint32) {
	if !c.skimsWrites() {
		return
	}
	inc &= 0x7fffffff // the reserved bit
	small := inc < minAnsweredBytes
	if c.winStream == 0 {
		open := initialConnWindow + c.sendWindow.Add(int64(inc))
		small = small && open < minOpenWindow
	}
	if small {
		c.frames++
		return
	}
	c.answer()
}

// skimsWrites reports whether the connection's writes are skimmed: with
// the header limit on, and on the web listener once HTTP/2's preface came.
func (c *resetConn) skimsWrites() bool {
	return c.guard.followsMessages() && (!c.web || c.h2.Load())
}
