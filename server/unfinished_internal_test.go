package server

import (
	"bytes"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// heldByEntries is what c's entries say it holds: what c.held must be
// after every read.
func heldByEntries(c *resetConn) int64 {
	var n int64
	for id, st := range c.kept {
		if !(c.inData && c.data.stream == id) { // the frame's copy is the newer
			n += int64(st.got)
		}
	}
	if c.inData {
		n += int64(c.data.st.got)
	}
	return n
}

// scanPlay drives one connection's scanner through a conversation: the
// client's bytes and the server's, each written with a framer of its own
// and scanned in pieces of 1 to 64 bytes at random.
type scanPlay struct {
	t       *testing.T
	c       *resetConn
	r       *rand.Rand
	in, out bytes.Buffer // the client's bytes not yet scanned, and the server's
	client  *http2.Framer
	server  *http2.Framer
	block   bytes.Buffer
	enc     *hpack.Encoder
}

func newScanPlay(t *testing.T, seed uint64) *scanPlay {
	g := &resetGuard{maxHeaderBytes: DefaultMaxHeaderBytes, messageLimits: messageLimits(requestLimits{watch: 1 << 20}), maxKeptStreams: 100}
	p := &scanPlay{t: t, c: &resetConn{guard: g, skip: len(http2.ClientPreface)}, r: rand.New(rand.NewPCG(seed, 2))}
	p.client, p.server = http2.NewFramer(&p.in, nil), http2.NewFramer(&p.out, nil)
	p.enc = hpack.NewEncoder(&p.block)
	p.in.WriteString(http2.ClientPreface)
	return p
}

func (p *scanPlay) open(id uint32, method string) {
	p.block.Reset()
	for _, f := range headersOf(method) {
		p.enc.WriteField(f)
	}
	if err := p.client.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block.Bytes(), EndHeaders: true}); err != nil {
		p.t.Fatal(err)
	}
}

func (p *scanPlay) data(id uint32, b []byte, end bool) {
	if err := p.client.WriteData(id, end, b); err != nil {
		p.t.Fatal(err)
	}
}

// serverEnds has the server end stream id, by RST_STREAM or by trailers,
// among DATA frames of its own.
func (p *scanPlay) serverEnds(id uint32, byReset bool) {
	p.server.WriteData(id+100, false, make([]byte, 40))
	if byReset {
		p.server.WriteRSTStream(id, http2.ErrCodeNo)
	} else {
		p.server.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte{0x88}, EndHeaders: true, EndStream: true})
	}
	p.server.WriteData(id+102, false, make([]byte, 20))
	for b := p.out.Bytes(); len(b) > 0; {
		k := min(1+p.r.IntN(64), len(b))
		p.c.scanWrite(b[:k])
		b = b[k:]
	}
	p.out.Reset()
}

// scan scans the client's bytes written since the last scan, the first n
// of them if n >= 0, and checks that the scanner then holds want.
func (p *scanPlay) scan(n int, want int64) {
	p.t.Helper()
	b := p.in.Bytes()
	if n >= 0 {
		b = b[:n]
	}
	p.in.Next(len(b))
	for len(b) > 0 {
		k := min(1+p.r.IntN(64), len(b))
		if !p.c.scan(b[:k]) {
			p.t.Fatalf("the scanner cut the connection: %v", p.c.err)
		}
		b = b[k:]
	}
	if p.c.held != want || heldByEntries(p.c) != want {
		p.t.Fatalf("the scanner holds %d (its entries %d), want %d", p.c.held, heldByEntries(p.c), want)
	}
}

// The scanner counts what the messages each stream has begun and not
// finished hold in grpc-go: the frames they arrived in, at their cost,
// until the message is whole, or the client or the server ends the stream;
// what comes on a stream the server ended is skipped, not read as
// messages. It counts the same however the client's and the server's
// bytes are split.
func TestScannerCountsWhatUnfinishedMessagesHold(t *testing.T) {
	const publish, subscribe = roomcastv1.BrokerService_Publish_FullMethodName, roomcastv1.BrokerService_Subscribe_FullMethodName
	cost := func(n int) int64 { return int64(frameCost(n)) }
	if cost(1) != 65 || cost(1024) != 1088 || cost(1025) != 2048+64 || cost(16<<10) != 16<<10+64 {
		t.Fatalf("frame costs: %d, %d, %d, %d", cost(1), cost(1024), cost(1025), cost(16<<10))
	}
	for seed := range uint64(20) {
		p := newScanPlay(t, seed)
		p.client.WriteSettings()
		p.open(1, publish)
		p.scan(-1, 0)
		p.data(1, message(1000, make([]byte, 300)), false)
		p.scan(-1, cost(305))
		p.data(1, make([]byte, 300), false)
		p.scan(-1, cost(305)+cost(300))
		p.open(3, publish)
		p.data(3, message(100, make([]byte, 100)), false) // whole
		p.scan(-1, cost(305)+cost(300))
		p.data(1, append(make([]byte, 400), message(2000, make([]byte, 50))...), false) // one ends, the next begins
		p.scan(-1, cost(455))
		p.client.WriteDataPadded(3, false, message(5000, make([]byte, 1000)), make([]byte, 30))
		p.scan(-1, cost(455)+cost(1036))
		p.client.WriteRSTStream(3, http2.ErrCodeCancel)
		p.scan(-1, cost(455))
		p.open(5, subscribe) // every followed stream counts
		p.data(5, message(100, make([]byte, 50)), false)
		p.scan(-1, cost(455)+cost(55))
		for range 3 { // a byte a frame: each frame costs its bookkeeping
			p.data(5, []byte{0}, false)
		}
		p.scan(-1, cost(455)+cost(55)+3*cost(1))
		p.serverEnds(1, seed%2 == 0)
		p.data(1, message(1<<30, make([]byte, 2000)), false) // skipped: not a prefix over the limit
		p.scan(-1, cost(55)+3*cost(1))
		p.data(1, nil, true)
		p.scan(-1, cost(55)+3*cost(1))
		if _, ok := p.c.kept[1]; ok {
			t.Fatal("stream 1's entry is kept after the client ended it")
		}
		p.data(5, make([]byte, 47), false)
		p.scan(-1, 0)
		// The server ends a stream while the scanner is within its frame.
		p.open(7, publish)
		p.scan(-1, 0)
		p.data(7, message(30000, make([]byte, 10000)), false)
		p.scan(-1, cost(10005))
		p.data(7, make([]byte, 10000), false)
		p.scan(5000, cost(10005))
		p.serverEnds(7, seed%2 == 1)
		p.scan(-1, 0)
		p.data(7, make([]byte, 300), false)
		p.scan(-1, 0)
		if st := p.c.kept[7]; !st.ended {
			t.Fatalf("stream 7's entry is %+v, want ended", st)
		}
	}
}

// addrConn is a connection from a remote address of the test's choosing,
// which records its closing.
type addrConn struct {
	net.Conn
	remote net.Addr
	closed atomic.Bool
}

func (c *addrConn) RemoteAddr() net.Addr { return c.remote }
func (c *addrConn) Close() error         { c.closed.Store(true); return nil }

// The budget sums what connections hold; past it, the address holding the
// most gives way, until the sum is within it again: every connection of
// its that holds something, and a penalty, if it held more than its
// share; its largest connection alone, and no penalty, if not. A
// connection that closes leaves the budget, and adds nothing after.
func TestUnfinishedBudget(t *testing.T) {
	cfg := config{abusePenalty: time.Minute, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	pen := newPenalties(&cfg)
	b := &unfinishedBudget{max: 1000, perAddr: 400, penalties: pen, log: cfg.log}
	g := &resetGuard{unfinished: b}
	conn := func(ip string) (*resetConn, *addrConn) {
		a := &addrConn{remote: &net.TCPAddr{IP: net.ParseIP(ip), Port: 1}}
		return &resetConn{Conn: a, guard: g}, a
	}
	hold := func(c *resetConn, n int64) bool {
		t.Helper()
		c.held += n
		ok := c.settle()
		if ok != (c.err == nil) {
			t.Fatalf("settle reported %v with err %v", ok, c.err)
		}
		return ok
	}
	given := func() uint64 { return pen.given[abuseUnfinished].Load() }
	want := func(total int64, closes, penalties uint64) {
		t.Helper()
		if got := b.total.Load(); got != total || b.closes.closed.Load() != closes || given() != penalties {
			t.Fatalf("total %d, %d closed, %d penalties; want %d, %d, %d", got, b.closes.closed.Load(), given(), total, closes, penalties)
		}
	}

	a, aConn := conn("10.0.0.1")
	b1, b1Conn := conn("10.0.0.2")
	b2, b2Conn := conn("10.0.0.2")
	b3, b3Conn := conn("10.0.0.2") // holds nothing
	c, cConn := conn("10.0.0.3")
	hold(a, 300)
	hold(b1, 350)
	hold(b2, 200) // 10.0.0.2 holds 550, over its share, but the budget lasts
	hold(b3, 10)
	hold(b3, -10)
	hold(c, 100)
	want(950, 0, 0)
	if !hold(a, 100) { // 1050: 10.0.0.2 holds the most, over its share
		t.Fatal("a was closed, not the largest holder")
	}
	if !b1Conn.closed.Load() || !b2Conn.closed.Load() || b3Conn.closed.Load() || aConn.closed.Load() {
		t.Fatalf("closed: b1 %v, b2 %v, b3 %v, a %v; want b1 and b2", b1Conn.closed.Load(), b2Conn.closed.Load(), b3Conn.closed.Load(), aConn.closed.Load())
	}
	want(500, 2, 1)
	hold(b1, 500) // closed: counts nothing
	want(500, 2, 1)
	if hold(c, 510) { // 1010: 10.0.0.3 holds 610, the most: c, itself
		t.Fatal("c went on past the budget, holding the most")
	}
	if cConn.closed.Load() { // its reader closes it, with GOAWAY
		t.Fatal("the budget closed c under its own reader")
	}
	want(400, 3, 2)
	// Within its share, the largest holder's largest connection is closed
	// without a penalty.
	d, dConn := conn("10.0.0.4")
	e, _ := conn("10.0.0.5")
	hold(d, 390)
	hold(e, 300) // 400 + 390 + 300: 10.0.0.1, at its share and not over
	if !aConn.closed.Load() || dConn.closed.Load() {
		t.Fatalf("a closed %v, d closed %v; want a alone", aConn.closed.Load(), dConn.closed.Load())
	}
	want(690, 4, 2)
	d.Close()
	want(300, 4, 2)
	e.Close()
	hold(d, 10) // after its close: counts nothing
	f, _ := conn("10.0.0.6")
	f.Close()
	hold(f, 10) // closed before it held anything: joins nothing
	b3.Close()
	if got, addrs := b.total.Load(), len(b.addrs); got != 0 || addrs != 0 {
		t.Fatalf("total %d over %d addresses once all closed, want none", got, addrs)
	}
}

// Readers adding and taking away, evictions and closes, all at once, leave
// the budget empty once every connection is closed, paced or not, and what
// an address holds never counts below nothing.
func TestUnfinishedBudgetUnderConcurrency(t *testing.T) {
	for _, paceRate := range []int64{0, 1 << 20} {
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		cfg := config{abusePenalty: time.Minute, log: log}
		b := &unfinishedBudget{max: 5000, perAddr: 2000, paceRate: paceRate, penalties: newPenalties(&cfg), log: log}
		g := &resetGuard{unfinished: b}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(w), 4))
				for range 300 {
					c := &resetConn{Conn: &addrConn{remote: &net.TCPAddr{IP: net.IPv4(10, 0, 0, byte(r.IntN(4))), Port: 1}}, guard: g}
					var closing sync.WaitGroup
					for i := range 6 {
						if i == 3 {
							closing.Go(func() { c.Close() })
						}
						c.held = max(0, c.held+int64(r.IntN(900))-300)
						c.settle() // its wait, left for pace, is not waited here
						if s := c.share; s != nil && s.addr != nil && s.addr.live.Load() < 0 {
							t.Errorf("an address holds %d", s.addr.live.Load())
						}
					}
					closing.Wait()
				}
			})
		}
		wg.Wait()
		if got, addrs := b.total.Load(), len(b.addrs); got != 0 || addrs != 0 {
			t.Fatalf("pace %d: total %d over %d addresses once all closed, want none", paceRate, got, addrs)
		}
	}
}

// BenchmarkScanWrite measures the skim of the server's writes: the frame
// headers of what grpc-go writes, a message's frames as fan-out writes
// them, and a call's end.
func BenchmarkScanWrite(b *testing.B) {
	for _, bc := range []struct {
		name   string
		frames func(fr *http2.Framer)
	}{
		{"messages", func(fr *http2.Framer) {
			for id := uint32(1); id < 64; id += 2 {
				fr.WriteData(id, false, make([]byte, 200))
			}
		}},
		{"call ends", func(fr *http2.Framer) {
			for id := uint32(1); id < 64; id += 2 {
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: make([]byte, 10), EndHeaders: true})
				fr.WriteData(id, false, make([]byte, 30))
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: make([]byte, 20), EndHeaders: true, EndStream: true})
			}
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var out bytes.Buffer
			fr := http2.NewFramer(&out, nil)
			bc.frames(fr)
			frames := 0
			for p := out.Bytes(); len(p) > 0; frames++ {
				p = p[frameHeaderLen+(int(p[0])<<16|int(p[1])<<8|int(p[2])):]
			}
			c := &resetConn{}
			b.ReportAllocs()
			for b.Loop() {
				c.scanWrite(out.Bytes())
				if c.ends.n.Load() > 0 {
					c.takeServerEnds()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*frames), "ns/frame")
		})
	}
}
