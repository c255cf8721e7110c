package client

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
)

// grpc-go reads each HTTP/2 DATA frame of more than 1 KiB into a buffer of
// its pool (smaller ones into bytes of their own), which the stream's codec
// decodes and then gives back. Its default pool has tiers of 256 bytes, 4,
// 16 and 32 KiB and 1 MiB, and zeroes each buffer it hands out: a
// subscriber receiving one message of 1 KiB per frame clears 4 KiB per
// message. A Client's connection uses bufferPool instead: a tier for every
// power of two from 256 bytes to 1 MiB, not zeroed. Not zeroing is safe
// because every user of a buffer writes the length it asked for before
// reading it, and the codec copies out what it keeps, so a buffer's old content
// is never read. (On a client's connection its buffers hold frames as they
// are read, messages spanning several frames copied into one, grpc-go's
// receive buffer when it compacts, and decompressed messages: each written
// in full, or exposed only as far as it was written.)
const (
	minPoolShift = 8  // 256 bytes: the smallest class, which smaller buffers take too
	maxPoolShift = 20 // 1 MiB: larger buffers are allocated and left to the collector
)

// bufferPool is a mem.BufferPool of buffers whose capacity is a power of
// two, one sync.Pool per size. It is safe for concurrent use.
type bufferPool struct {
	tiers [maxPoolShift + 1]sync.Pool // by log2 of the capacity; below minPoolShift unused
}

var _ mem.BufferPool = (*bufferPool)(nil)

// receivePool is the pool of every Client's connection.
var receivePool = new(bufferPool)

// Get returns a buffer of length n, its content unspecified.
func (p *bufferPool) Get(n int) *[]byte {
	shift := minPoolShift
	if n > 1<<minPoolShift {
		shift = bits.Len(uint(n - 1))
	}
	if shift > maxPoolShift {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.tiers[shift].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<shift)
	return &b
}

// Put gives b back to the pool, if its capacity is one of the pool's sizes.
func (p *bufferPool) Put(b *[]byte) {
	c := cap(*b)
	shift := bits.Len(uint(c)) - 1
	if c == 0 || c != 1<<shift || shift < minPoolShift || shift > maxPoolShift {
		return
	}
	p.tiers[shift].Put(b)
}

// bufferPoolOptions is the dial option that makes a Client's connection use
// receivePool; WithDialOptions may override it.
func bufferPoolOptions() []grpc.DialOption {
	return []grpc.DialOption{experimental.WithBufferPool(receivePool)}
}
