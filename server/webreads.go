package server

// webReadBuffer is how much a web connection that speaks HTTP/2 reads from
// the kernel at once. net/http's HTTP/2 server reads each frame's header
// and then its payload straight from the connection: two system calls a
// frame, and a publish comes in two or three frames. On the gRPC port
// grpc-go reads through a buffer of its own. 4 KiB holds the frames of
// a dozen small calls; a read as large goes straight through.
const webReadBuffer = 4 << 10

// webReads is what a web connection read from the kernel, and scanned, and
// net/http has not taken yet. Only the connection's reader uses it.
type webReads struct {
	buf  []byte // made at the first buffered read
	rest []byte // of buf, not yet taken
	err  error  // the error that came with rest, returned once rest is taken
}

// readBuffered is Read for a web connection past its HTTP/2 preface: it
// hands out what an earlier read left, or reads webReadBuffer from the
// kernel, scanned as a whole, first.
func (c *resetConn) readBuffered(p []byte) (int, error) {
	r := &c.rbuf
	if len(r.rest) == 0 {
		if err := r.err; err != nil {
			r.err = nil
			return 0, err
		}
		if len(p) >= webReadBuffer {
			return c.readScanned(p)
		}
		if r.buf == nil {
			r.buf = make([]byte, webReadBuffer)
		}
		n, err := c.readScanned(r.buf)
		if n == 0 {
			return 0, err
		}
		r.rest, r.err = r.buf[:n], err
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}
