package server

import (
	"net"
	"sync"
	"time"
)

// webReadBuffer is how much a plaintext web connection that speaks HTTP/2
// reads from the kernel at once. net/http's HTTP/2 server reads each
// frame's header and then its payload straight from the connection: two
// system calls a frame, and a publish comes in two or three frames (8.1
// reads a publish, client and server, against 2.4 with the buffer). On the
// gRPC port grpc-go reads through a buffer of its own; over TLS, crypto/tls
// serves small reads from the record it decrypted. 4 KiB holds the frames
// of a dozen small calls; a read as large goes straight through.
const webReadBuffer = 4 << 10

// webReadBufs holds the buffers of the connections whose frames are coming:
// a connection holds one only while the kernel may have more for it, so an
// idle one, blocked in its read, holds none.
var webReadBufs = sync.Pool{New: func() any { b := make([]byte, webReadBuffer); return &b }}

// webReads is what a web connection read from the kernel, and scanned, and
// net/http has not taken yet. Only the connection's reader uses it.
type webReads struct {
	buf  *[]byte // from webReadBufs, while rest is not empty or the kernel may have more; nil otherwise
	rest []byte  // of buf, not yet taken
	err  error   // the error that came with rest, returned once rest is taken
	dry  bool    // the last read from the kernel took all it had: the next goes straight into the reader's
}

// buffersReads reports whether c's reads go through webReads: a plaintext
// web connection past its HTTP/2 preface, which net/http reads through a
// reader of its own.
func (c *resetConn) buffersReads() bool {
	return c.web && c.Conn == c.raw && c.h2.Load()
}

// readBuffered is Read for a connection that buffersReads: it hands out
// what an earlier read left, or reads up to webReadBuffer from the kernel,
// scanned as a whole, first. Once the kernel had less than that, the next
// read goes straight into p, without a buffer, as it may wait long; a read
// that fills p goes on buffered.
//
// What it hands out from the buffer waits out a hold on the connection's
// reads (holdReads), as a read from the kernel does in pace, and none is
// handed out once the guard has closed the connection: frames scanned
// ahead must not run calls the connection would not have read.
func (c *resetConn) readBuffered(p []byte) (int, error) {
	r := &c.rbuf
	if len(r.rest) == 0 {
		if err := r.err; err != nil {
			r.err = nil
			return 0, err
		}
		if r.dry || len(p) >= webReadBuffer {
			n, err := c.readScanned(p)
			r.dry = n < len(p)
			return n, err
		}
		if r.buf == nil {
			r.buf = webReadBufs.Get().(*[]byte)
		}
		buf := *r.buf
		n, err := c.readScanned(buf)
		if n == 0 {
			r.release()
			return 0, err
		}
		r.rest, r.err, r.dry = buf[:n], err, n < len(buf)
		return c.takeBuffered(p), nil
	}
	if c.closedByGuard() {
		r.release()
		return 0, net.ErrClosed
	}
	if until := c.readsHeld.Load(); until != 0 {
		if d := time.Until(time.Unix(0, until)); d > 0 {
			c.pause.wait(min(d, maxReadWait))
		}
	}
	return c.takeBuffered(p), nil
}

// takeBuffered copies what it can of the buffered bytes into p, and gives
// the buffer back once they are all taken and the kernel had no more.
func (c *resetConn) takeBuffered(p []byte) int {
	r := &c.rbuf
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	if len(r.rest) == 0 && r.dry {
		r.release()
	}
	return n
}

// release gives r's buffer back to the pool.
func (r *webReads) release() {
	if r.buf != nil {
		webReadBufs.Put(r.buf)
		r.buf, r.rest = nil, nil
	}
}

// closedByGuard reports whether the connection guard closed c's
// connection (past its refused calls, say).
func (c *resetConn) closedByGuard() bool {
	gc, ok := c.raw.(*guardedConn)
	return ok && gc.t.closed.Load()
}
