package server

import (
	"bytes"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// mirrorCut scans stream, a client's bytes from its preface on, in pieces
// of splits() bytes with a header limit of limit, and returns the offsets
// the piece it refused began and ended at, or -1, -1.
func mirrorCut(stream []byte, limit uint32, splits func() int) (from, to int) {
	c := &resetConn{guard: &resetGuard{maxHeaderBytes: limit}, skip: len(http2.ClientPreface)}
	for off := 0; off < len(stream); {
		n := min(max(1, splits()), len(stream)-off)
		if !c.scan(stream[off : off+n]) {
			return off, off + n
		}
		off += n
	}
	return -1, -1
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// framerVerdict reads stream as grpc-go's server does (golang.org/x/net's
// Framer, with its header list limit), and returns how far it read
// before anything went wrong, and whether what went wrong was a header
// list over the limit, which ended at overEnd.
func framerVerdict(stream []byte, limit uint32) (okUpTo int, over bool, overEnd int) {
	cr := &countingReader{r: bytes.NewReader(stream[len(http2.ClientPreface):])}
	fr := http2.NewFramer(nil, cr)
	fr.ReadMetaHeaders = hpack.NewDecoder(initialHeaderTableSize, nil)
	fr.MaxHeaderListSize = limit
	fr.SetMaxReadFrameSize(16 << 10) // grpc-go's
	base := len(http2.ClientPreface)
	okUpTo = base
	for {
		f, err := fr.ReadFrame()
		if err != nil { // the end, a connection error, or a stream refused
			return okUpTo, false, 0
		}
		if mh, ok := f.(*http2.MetaHeadersFrame); ok && mh.Truncated {
			return okUpTo, true, base + cr.n
		}
		okUpTo = base + cr.n
	}
}

// checkMirror checks that the mirror refuses stream where grpc-go's framer
// finds a header list over limit, and nowhere it reads well, however the
// bytes are split between reads.
func checkMirror(t *testing.T, stream []byte, limit uint32, seed uint64) {
	t.Helper()
	okUpTo, over, overEnd := framerVerdict(stream, limit)
	r := rand.New(rand.NewPCG(seed, 1))
	splits := []func() int{
		func() int { return len(stream) },
		func() int { return 1 },
		func() int { return 1 + r.IntN(7) },
		func() int { return 1 + r.IntN(4096) },
	}
	for i, split := range splits {
		from, to := mirrorCut(stream, limit, split)
		if from >= 0 && to <= okUpTo {
			t.Fatalf("splits %d: the mirror refused bytes %d to %d, which the framer read well (up to %d)", i, from, to, okUpTo)
		}
		if over && (from < 0 || from >= overEnd) {
			t.Fatalf("splits %d: the framer found a header list over %d ending at %d; the mirror refused bytes %d to %d", i, limit, overEnd, from, to)
		}
	}
}

// h2Stream builds a client's bytes: the preface, then what frames writes.
func h2Stream(t testing.TB, frames func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte)) []byte {
	var b, block bytes.Buffer
	b.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&b, nil)
	e := hpack.NewEncoder(&block)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	frames(fr, func(fields ...hpack.HeaderField) []byte {
		block.Reset()
		for _, f := range fields {
			if err := e.WriteField(f); err != nil {
				t.Fatal(err)
			}
		}
		return bytes.Clone(block.Bytes())
	})
	return b.Bytes()
}

// requestHeaders are what a grpc-go client sends for a Publish, with extra.
func requestHeaders(extra ...hpack.HeaderField) []hpack.HeaderField {
	return append([]hpack.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: "http"},
		{Name: ":path", Value: "/roomcast.v1.BrokerService/Publish"},
		{Name: ":authority", Value: "127.0.0.1:7070"},
		{Name: "content-type", Value: "application/grpc"},
		{Name: "user-agent", Value: "grpc-go/1.85.0"},
		{Name: "te", Value: "trailers"},
	}, extra...)
}

// listSize is a header list's size as HTTP/2 counts it.
func listSize(fields []hpack.HeaderField) uint32 {
	var n uint32
	for _, f := range fields {
		n += f.Size()
	}
	return n
}

// headerMirrorCases are client streams that the mirror must size as
// grpc-go does: lists at and over the limit, in one frame and split over
// CONTINUATIONs, padded and with priority, after the client shrinks its
// HPACK table, and the header bomb. They seed FuzzHeaderMirror too.
func headerMirrorCases(t testing.TB) map[string][]byte {
	const limit = 2048
	pad := func(total uint32, name string) []hpack.HeaderField {
		base := requestHeaders()
		fields := append(base, hpack.HeaderField{Name: name})
		fields[len(fields)-1].Value = strings.Repeat("v", int(total-listSize(fields)))
		return fields
	}
	atLimit, overLimit := pad(limit, "x-pad"), pad(limit+1, "x-pad")
	bombValue := base64.StdEncoding.EncodeToString(make([]byte, 1000)) // under the limit: an entry of the table
	cases := map[string][]byte{
		"at the limit, then over it": h2Stream(t, func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(atLimit...), EndHeaders: true, EndStream: true})
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: enc(atLimit...), EndHeaders: true, EndStream: true})
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: enc(overLimit...), EndHeaders: true, EndStream: true})
		}),
		"padded, with priority, over continuations": h2Stream(t, func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			b := enc(atLimit...)
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:10], PadLength: 17, Priority: http2.PriorityParam{Weight: 3}})
			fr.WriteContinuation(1, false, b[10:20])
			fr.WriteContinuation(1, false, nil)
			fr.WriteContinuation(1, true, b[20:])
			fr.WriteData(1, true, []byte{0, 0, 0, 0, 0})
			b = enc(overLimit...)
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: b[:5], PadLength: 255})
			fr.WriteContinuation(3, true, b[5:])
		}),
		"the header bomb": h2Stream(t, func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			bomb := requestHeaders()
			for range 1000 {
				bomb = append(bomb, hpack.HeaderField{Name: "x-bomb-bin", Value: bombValue})
			}
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(bomb...), EndHeaders: true})
		}),
		"trailer fields count apart": h2Stream(t, func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			fields := append(pad(limit-20, "x-pad"), hpack.HeaderField{Name: "trailer", Value: "a,b"}) // 66 bytes of its own budget
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(fields...), EndHeaders: true})
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: enc(overLimit...), EndHeaders: true})
		}),
		// A block of indexed fields, repeated byte for byte after another
		// block added two large entries to the table: its indexes now name
		// them, and its list is over the limit.
		"a repeated block after the table changed": h2Stream(t, func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			fields := requestHeaders(hpack.HeaderField{Name: "x-a", Value: "v"})
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(fields...), EndHeaders: true, EndStream: true})
			indexed := enc(fields...)
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: indexed, EndHeaders: true, EndStream: true})
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: indexed, EndHeaders: true, EndStream: true})
			big := strings.Repeat("b", 1000)
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 7, BlockFragment: enc(requestHeaders(hpack.HeaderField{Name: "x-big1", Value: big})...), EndHeaders: true, EndStream: true})
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 9, BlockFragment: enc(requestHeaders(hpack.HeaderField{Name: "x-big2", Value: big})...), EndHeaders: true, EndStream: true})
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 11, BlockFragment: indexed, EndHeaders: true, EndStream: true})
		}),
		// A block that inserts into the table, repeated byte for byte: it is
		// not of indexed fields only, so it is decoded again, and inserts
		// again; the block of indexes after names both copies.
		"a repeated block that inserts": h2Stream(t, func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(requestHeaders(hpack.HeaderField{Name: "x-a", Value: "v"})...), EndHeaders: true, EndStream: true})
			ins := enc(requestHeaders(hpack.HeaderField{Name: "x-big", Value: strings.Repeat("b", 950)})...)
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: ins, EndHeaders: true, EndStream: true})
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: ins, EndHeaders: true, EndStream: true})
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 7, BlockFragment: []byte{0x83, 0x86, 0xbe, 0xbf}, EndHeaders: true, EndStream: true})
		}),
		"malformed block": h2Stream(t, func(fr *http2.Framer, _ func(...hpack.HeaderField) []byte) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, EndHeaders: true})
		}),
	}
	// A client that shrinks its table to 64 bytes: the entries after are
	// sized by the mirror as the server's decoder has them.
	cases["table size update"] = func() []byte {
		var b, block bytes.Buffer
		b.WriteString(http2.ClientPreface)
		fr := http2.NewFramer(&b, nil)
		e := hpack.NewEncoder(&block)
		fr.WriteSettings()
		write := func(id uint32, fields []hpack.HeaderField) {
			block.Reset()
			for _, f := range fields {
				e.WriteField(f)
			}
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true})
		}
		write(1, atLimit)
		e.SetMaxDynamicTableSizeLimit(64)
		e.SetMaxDynamicTableSize(64)
		write(3, atLimit)
		write(5, atLimit)
		write(7, overLimit)
		return b.Bytes()
	}()
	return cases
}

func TestHeaderMirrorAgreesWithTheFramer(t *testing.T) {
	for name, stream := range headerMirrorCases(t) {
		t.Run(name, func(t *testing.T) {
			if _, over, _ := framerVerdict(stream, 2048); !over && name != "malformed block" {
				t.Fatal("the case has no header list over the limit: it tests nothing")
			}
			checkMirror(t, stream, 2048, 1)
		})
	}
}

// FuzzHeaderMirror checks the mirror against grpc-go's framer on any bytes a
// client might send after its preface, split between reads at random,
// with limits from 64 bytes. Its seeds in testdata are headerMirrorCases
// with a limit of 2048.
func FuzzHeaderMirror(f *testing.F) {
	f.Fuzz(func(t *testing.T, frames []byte, limit uint16, seed uint64) {
		stream := append([]byte(http2.ClientPreface), frames...)
		checkMirror(t, stream, 64+uint32(limit), seed)
	})
}

// BenchmarkHeaderScan is the scanner's cost per call on the connection of
// a grpc-go client: a HEADERS frame as its encoder writes one (the fields
// indexed once the first call has sent them, and a grpc-timeout that
// changes with every call, or none), then a small DATA frame; with the
// header mirror and without (resets alone). The frames arrive 32 KiB a read, as
// grpc-go reads them.
func BenchmarkHeaderScan(b *testing.B) {
	const callsPerChunk = 4096
	for _, bc := range []struct {
		name     string
		max      uint32
		deadline bool // the calls send grpc-timeout; the client package's Publish does not
	}{{"mirror", DefaultMaxHeaderBytes, true}, {"mirror-no-deadline", DefaultMaxHeaderBytes, false}, {"resets-only", 0, true}} {
		b.Run(bc.name, func(b *testing.B) {
			var stream, block bytes.Buffer
			fr := http2.NewFramer(&stream, nil)
			enc := hpack.NewEncoder(&block)
			fields := requestHeaders(hpack.HeaderField{Name: "authorization", Value: "Bearer rk_" + strings.Repeat("k", 40)})
			if bc.deadline {
				fields = append(fields, hpack.HeaderField{Name: "grpc-timeout"})
			}
			id := uint32(1)
			calls := func(n int) []byte { // the next n calls, as the client's encoder writes them
				stream.Reset()
				for range n {
					if bc.deadline {
						fields[len(fields)-1].Value = strconv.Itoa(int(id%10000)) + "m"
					}
					block.Reset()
					for _, f := range fields {
						enc.WriteField(f)
					}
					fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true})
					fr.WriteData(id, true, make([]byte, 25))
					id += 2
				}
				return stream.Bytes()
			}
			g := &resetGuard{maxHeaderBytes: bc.max}
			if bc.max > 0 { // the server's scanner: following messages too (messageguard.go)
				g.messageLimits, g.maxKeptStreams = messageLimits(requestLimits{watch: 1 << 20}), 4000
			}
			c := &resetConn{guard: g, skip: len(http2.ClientPreface)}
			scan := func(p []byte) {
				for len(p) > 0 {
					n := min(32<<10, len(p))
					if !c.scan(p[:n]) {
						b.Fatal("the scanner refused a call")
					}
					p = p[n:]
				}
			}
			scan([]byte(http2.ClientPreface))
			// Without the mirror the scanner keeps no HPACK state, so one
			// chunk of calls does for every round; the mirror needs each
			// call once, in order, encoded with the timer stopped.
			chunk := calls(callsPerChunk)
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += callsPerChunk {
				p := chunk
				if bc.max > 0 && done > 0 {
					b.StopTimer()
					p = calls(min(callsPerChunk, b.N-done))
					b.StartTimer()
				}
				scan(p)
			}
		})
	}
}

// A header block's frames come one after the other (RFC 9113, 6.10): a
// frame that breaks into a block, or a CONTINUATION with no block open,
// closes the connection, however the reads are split. Before, the mirror
// went on decoding such a block where grpc-go would not, and whether it
// cut depended on the split.
func TestAHeaderBlockBrokenIntoClosesTheConnection(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frames func(fr *http2.Framer, block []byte)
		cut    bool
	}{
		{"a block over CONTINUATION", func(fr *http2.Framer, block []byte) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:3]})
			fr.WriteContinuation(1, true, block[3:])
		}, false},
		{"a block interrupted by another frame", func(fr *http2.Framer, block []byte) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:3]})
			fr.WriteData(3, false, []byte("x"))
			fr.WriteContinuation(1, true, block[3:])
		}, true},
		{"a block continued on another stream", func(fr *http2.Framer, block []byte) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:3]})
			fr.WriteContinuation(3, true, block[3:])
		}, true},
		{"a block on stream 0 interrupted", func(fr *http2.Framer, block []byte) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 0, BlockFragment: block[:3]})
			fr.WritePing(false, [8]byte{})
		}, true},
		{"a stray CONTINUATION", func(fr *http2.Framer, block []byte) {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true})
			fr.WriteContinuation(1, true, block)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := h2Stream(t, func(f *http2.Framer, enc func(...hpack.HeaderField) []byte) {
				f.AllowIllegalWrites = true
				tc.frames(f, enc(requestHeaders()...))
			})
			if dir := os.Getenv("ROOMCAST_WRITE_FUZZ_SEEDS"); dir != "" { // refreshes FuzzMessageGuard's seeds
				writeSeed(t, dir, tc.name, stream[len(http2.ClientPreface):])
			}
			for seed := range uint64(20) {
				err := messageScan(stream, 3, seed)
				if cut := err != nil; cut != tc.cut || cut && err != errHeaderFlood {
					t.Fatalf("seed %d: the scanner ended with %v, want cut %v", seed, err, tc.cut)
				}
			}
		})
	}
}
