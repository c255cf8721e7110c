package server

import (
	"bytes"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"testing"

	"golang.org/x/net/http2"
)

// The scanner finds every RST_STREAM frame and the highest stream opened
// however the client's bytes are split between reads, skipping payloads
// that hold what looks like frame headers.
func TestResetScannerFindsFramesAcrossReads(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&b, nil)
	rst := []byte{0, 0, 4, byte(http2.FrameRSTStream), 0, 0, 0, 0, 1, 0, 0, 0, 8} // a whole RST_STREAM frame, as payload
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check(fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20}))
	check(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rst, EndHeaders: true}))
	check(fr.WriteData(1, false, bytes.Repeat(rst, 16384/len(rst))))
	check(fr.WriteRSTStream(1, http2.ErrCodeCancel))
	check(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 7, BlockFragment: rst, EndHeaders: true, Priority: http2.PriorityParam{StreamDep: 1}}))
	check(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: rst, EndHeaders: true})) // lower: not the highest
	check(fr.WritePing(false, [8]byte{}))
	check(fr.WriteRSTStream(7, http2.ErrCodeCancel))
	check(fr.WriteWindowUpdate(0, 1<<20))
	check(fr.WriteData(3, true, rst))
	check(fr.WriteRSTStream(3, http2.ErrCodeCancel))
	check(fr.WriteData(5, true, nil))
	stream := b.Bytes()

	g := &resetGuard{rate: 1, burst: 100}
	scan := func(t *testing.T, splits func() int) {
		t.Helper()
		c := &resetConn{guard: g, skip: len(http2.ClientPreface), tokens: 100}
		for p := stream; len(p) > 0; {
			n := min(splits(), len(p))
			if !c.scan(p[:n]) {
				t.Fatal("scan refused the stream")
			}
			p = p[n:]
		}
		if c.resets != 3 || c.stream != 7 || c.fh.n != 0 || c.skip != 0 {
			t.Fatalf("resets %d, highest stream %d, %d header bytes held, %d to skip; want 3, 7, 0, 0", c.resets, c.stream, c.fh.n, c.skip)
		}
	}
	for n := 1; n <= 2*frameHeaderLen+1; n++ {
		scan(t, func() int { return n })
	}
	scan(t, func() int { return len(stream) })
	r := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		scan(t, func() int { return 1 + r.IntN(64) })
	}
}

// A connection's bucket holds resetsAtOpen tokens at first, or burst if
// that is smaller; the reset past them is refused.
func TestResetBucketStartsNearlyEmpty(t *testing.T) {
	for _, burst := range []float64{3, 50} {
		g := &resetGuard{rate: 1e-9, burst: burst}
		c := g.watch(&net.TCPConn{}, nil).(*resetConn) // its SyscallConn fails: read through Read
		allowed := int(min(burst, resetsAtOpen))
		var b bytes.Buffer
		b.WriteString(http2.ClientPreface)
		fr := http2.NewFramer(&b, nil)
		for i := range allowed + 1 {
			if err := fr.WriteRSTStream(uint32(2*i+1), http2.ErrCodeCancel); err != nil {
				t.Fatal(err)
			}
		}
		frames := b.Bytes()
		last := len(frames) - (frameHeaderLen + 4)
		if !c.scan(frames[:last]) {
			t.Fatalf("burst %v: the first %d resets were refused", burst, allowed)
		}
		if c.scan(frames[last:]) {
			t.Fatalf("burst %v: reset %d was allowed", burst, allowed+1)
		}
	}
}

// Closures are logged once a second at most, with the address of the
// client; the line after a quiet second counts the ones not logged.
func TestResetClosuresAreLoggedOnceASecond(t *testing.T) {
	var log bytes.Buffer
	g := &resetGuard{rate: 1, burst: 1, log: slog.New(slog.NewTextHandler(&log, nil))}
	peer := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}
	for range 100 {
		g.closedConn(peer, 20)
	}
	if n := strings.Count(log.String(), "\n"); n != 1 || !strings.Contains(log.String(), "peer=127.0.0.1:4242 resets=20") {
		t.Fatalf("100 closures at once logged %d lines: %q", n, log.String())
	}
	g.lastLog.Add(-int64(resetLogEvery)) // a second later
	g.closedConn(peer, 30)
	if lines := strings.Split(strings.TrimSpace(log.String()), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "unlogged=99") {
		t.Fatalf("the next line does not count the 99 closures not logged: %q", log.String())
	}
	if g.closed.Load() != 101 {
		t.Errorf("counted %d closures, want 101", g.closed.Load())
	}
}
