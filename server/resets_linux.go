package server

import (
	"io"
	"net"
	"syscall"

	"google.golang.org/grpc/mem"
)

// On Linux, grpc-go reads a plaintext *net.TCPConn without pinning a read
// buffer to each connection: it waits until the socket is readable, takes a
// buffer from a pool, reads and scans the frames, and gives the buffer back,
// so an idle connection holds no read buffer. It does so for any connection
// with a method ReadOnReady of this signature, and for no other wrapper; a
// watched plaintext connection has one, so watching does not cost each
// connection a 32 KiB buffer. (The method's interface is internal to
// grpc-go: a grpc-go that stopped calling it would read through Read and a
// buffer of its own again, correctly, and TestIdleConnectionsPinNoReadBuffer
// would say so.)

// tcpResetConn is a watched plaintext TCP connection.
type tcpResetConn struct {
	*resetConn
	raw syscall.RawConn

	// One read's state, in fields so that readFD, a method value made
	// once, allocates nothing per read.
	pool   mem.BufferPool
	size   int
	buf    *[]byte
	n      int
	rerr   error
	readFD func(fd uintptr) bool
}

func watchTCP(rc *resetConn, tcp *net.TCPConn) net.Conn {
	raw, err := tcp.SyscallConn()
	if err != nil {
		return rc
	}
	c := &tcpResetConn{resetConn: rc, raw: raw}
	c.readFD = c.read
	return c
}

// ReadOnReady waits until the connection is readable, then reads up to size
// bytes into a buffer from pool, which it returns with the count; the caller
// gives the buffer back to the pool. An error comes with no buffer.
func (c *tcpResetConn) ReadOnReady(size int, pool mem.BufferPool) (*[]byte, int, error) {
	if c.err != nil {
		return nil, 0, c.err
	}
	c.pool, c.size = pool, size
	err := c.raw.Read(c.readFD)
	buf, n, rerr := c.buf, c.n, c.rerr
	c.pool, c.buf, c.rerr = nil, nil, nil
	switch {
	case err != nil: // the connection is closed, or a deadline passed
		if buf != nil {
			pool.Put(buf)
		}
		return nil, 0, err
	case rerr != nil: // the buffer went back in read
		return nil, 0, rerr
	case n == 0:
		pool.Put(buf)
		return nil, 0, io.EOF
	}
	if !c.scan((*buf)[:n]) {
		pool.Put(buf)
		return nil, 0, c.cut()
	}
	return buf, n, nil
}

// read is one attempt at reading fd, which RawConn.Read repeats while it
// reports false (the socket had nothing to read).
func (c *tcpResetConn) read(fd uintptr) bool {
	c.buf = c.pool.Get(c.size)
	c.n, c.rerr = syscall.Read(int(fd), *c.buf)
	if c.rerr != nil {
		c.pool.Put(c.buf)
		c.buf = nil
		return c.rerr != syscall.EAGAIN && c.rerr != syscall.EWOULDBLOCK
	}
	return true
}
