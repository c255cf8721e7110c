// Package bufpool is a buffer pool for grpc-go's receive path, and for the
// encodings of internal/vtcodec, that does not zero the buffers it hands
// out.
//
// grpc-go reads each HTTP/2 DATA frame of more than 1 KiB into a buffer of
// its pool (smaller ones into bytes of their own), which the stream's codec
// decodes and then gives back, and a codec copies a message that spans
// frames into one buffer before decoding it. grpc-go's default pool has
// tiers of 256 bytes, 4, 16 and 32 KiB and 1 MiB, and zeroes each buffer it
// hands out, in full: a subscriber receiving one message of 1 KiB per frame
// clears 4 KiB per message, and a server reading a 40 KiB batch of
// publishes clears a 16 KiB buffer per frame and then 1 MiB to copy them
// into. Pool instead has a tier for every power of two from 256 bytes to
// 1 MiB, not zeroed. Not zeroing is safe where every user of a buffer writes
// the length it asked for before reading it, and the codec copies out what
// it keeps, so a buffer's old content is never read: grpc-go's reader
// writes each frame, each message spanning several frames copied into one,
// its receive buffer when it compacts, and decompressed messages, in full,
// or exposes them only as far as they were written.
package bufpool

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

const (
	minShift = 8  // 256 bytes: the smallest class, which smaller buffers take too
	maxShift = 20 // 1 MiB: larger buffers are allocated and left to the collector
)

// Pool is a mem.BufferPool of buffers whose capacity is a power of two,
// one sync.Pool per size, handed out with whatever they held. Its zero
// value is ready to use; it is safe for concurrent use.
type Pool struct {
	tiers [maxShift + 1]sync.Pool // by log2 of the capacity; below minShift unused
}

var _ mem.BufferPool = (*Pool)(nil)

// Get returns a buffer of length n, its content unspecified.
func (p *Pool) Get(n int) *[]byte {
	shift := minShift
	if n > 1<<minShift {
		shift = bits.Len(uint(n - 1))
	}
	if shift > maxShift {
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
func (p *Pool) Put(b *[]byte) {
	c := cap(*b)
	shift := bits.Len(uint(c)) - 1
	if c == 0 || c != 1<<shift || shift < minShift || shift > maxShift {
		return
	}
	p.tiers[shift].Put(b)
}
