package bufpool

import "testing"

// The pool hands out buffers of the length asked for, in capacities that
// are powers of two it takes back, and allocates the rest without keeping
// them.
func TestBufferPoolSizes(t *testing.T) {
	p := new(Pool)
	for _, tc := range []struct{ n, cap int }{
		{0, 256}, {1, 256}, {256, 256}, {257, 512}, {1024, 1024}, {1060, 2048},
		{16 << 10, 16 << 10}, {1 << 20, 1 << 20}, {1<<20 + 1, 1<<20 + 1},
	} {
		b := p.Get(tc.n)
		if len(*b) != tc.n || cap(*b) != tc.cap {
			t.Errorf("Get(%d): length %d, capacity %d; want capacity %d", tc.n, len(*b), cap(*b), tc.cap)
		}
		p.Put(b)
	}
	// A buffer given back sliced shorter serves a later Get of its size
	// class at the length asked for. (sync.Pool may drop a Put, under -race
	// at random, so try until the pool hands that buffer back.)
	for try := 0; ; try++ {
		if try == 100 {
			t.Fatal("the pool never handed back a buffer it was given")
		}
		b := p.Get(3000)
		*b = (*b)[:10]
		p.Put(b)
		c := p.Get(2100)
		if &(*c)[:1][0] != &(*b)[:1][0] {
			continue
		}
		if len(*c) != 2100 || cap(*c) != 4096 {
			t.Fatalf("Get(2100): length %d, capacity %d", len(*c), cap(*c))
		}
		break
	}
	// Capacities the pool does not make are dropped, not handed out.
	odd := make([]byte, 3000)
	p.Put(&odd)
	small := make([]byte, 16)
	p.Put(&small)
	empty := []byte(nil)
	p.Put(&empty)
	if c := p.Get(2100); cap(*c) != 4096 {
		t.Fatalf("Get(2100) after odd Puts: capacity %d", cap(*c))
	}
}
