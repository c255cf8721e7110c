package server

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// messageScan scans stream, a client's bytes from its preface on, in
// pieces of 1 to 64 bytes at random (seeded), following at most
// maxStreams streams, and returns the error the scanner cut the
// connection with, or nil.
func messageScan(stream []byte, maxStreams int, seed uint64) error {
	g := &resetGuard{maxHeaderBytes: DefaultMaxHeaderBytes, messageLimits: messageLimits(requestLimits{watch: 1 << 20}), maxKeptStreams: maxStreams}
	c := &resetConn{guard: g, skip: len(http2.ClientPreface)}
	r := rand.New(rand.NewPCG(seed, 1))
	for off := 0; off < len(stream); {
		n := min(1+r.IntN(64), len(stream)-off)
		if !c.scan(stream[off : off+n]) {
			return c.err
		}
		off += n
	}
	return nil
}

// messageScanEnding is messageScan with the server ending streams the
// client opened, between reads, at random (seeded); after each read, what
// the scanner counts as held must be what its entries hold.
func messageScanEnding(t *testing.T, stream []byte, seed uint64) {
	g := &resetGuard{maxHeaderBytes: DefaultMaxHeaderBytes, messageLimits: messageLimits(requestLimits{watch: 1 << 20}), maxKeptStreams: 3}
	c := &resetConn{guard: g, skip: len(http2.ClientPreface)}
	r := rand.New(rand.NewPCG(seed, 3))
	var out bytes.Buffer
	fr := http2.NewFramer(&out, nil)
	for off := 0; off < len(stream); {
		if c.stream > 0 && r.IntN(4) == 0 {
			id := 1 + uint32(r.IntN(int(min(c.stream, 1<<20))))
			if r.IntN(2) == 0 {
				fr.WriteRSTStream(id, http2.ErrCodeNo)
			} else {
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte{0x88}, EndHeaders: true, EndStream: true})
			}
			b := out.Bytes()
			k := r.IntN(len(b) + 1) // a frame split between writes
			c.scanWrite(b[:k])
			c.scanWrite(b[k:])
			out.Reset()
		}
		n := min(1+r.IntN(64), len(stream)-off)
		ok := c.scan(stream[off : off+n])
		if held := heldByEntries(c); c.held != held || held < 0 {
			t.Fatalf("at byte %d the scanner holds %d, its entries %d", off+n, c.held, held)
		}
		if !ok {
			return
		}
		off += n
	}
}

// message is a gRPC message's prefix announcing n bytes, then body.
func message(n int, body []byte) []byte {
	b := make([]byte, grpcPrefixLen, grpcPrefixLen+len(body))
	binary.BigEndian.PutUint32(b[1:], uint32(n))
	return append(b, body...)
}

func headersOf(method string) []hpack.HeaderField {
	fields := requestHeaders()
	fields[2].Value = method
	return fields
}

// A message announced far over its method's limit, on a stream of a method
// whose requests are small, closes the connection as its prefix arrives,
// however its frames are split and padded; one within the slack, or on
// another method, does not.
func TestMessageGuardCutsWhatIsAnnouncedOverTheLimit(t *testing.T) {
	const subscribe = roomcastv1.BrokerService_Subscribe_FullMethodName
	over := announceSlack + 1
	write := func(t *testing.T, fr *http2.Framer, id uint32, data []byte, end bool) {
		if err := fr.WriteData(id, end, data); err != nil {
			t.Fatal(err)
		}
	}
	open := func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte, id uint32, method string) {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: enc(headersOf(method)...), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	openSplit := func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte, id uint32, method string) {
		block := enc(headersOf(method)...)
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block[:1]}); err != nil {
			t.Fatal(err)
		}
		if err := fr.WriteContinuation(id, true, block[1:]); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		frames func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte)
		cut    bool
	}{
		{"a command within the slack", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			open(t, fr, enc, 1, subscribe)
			write(t, fr, 1, message(maxCommandBytes+1, make([]byte, 100)), false)
		}, false},
		{"a command over it", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			open(t, fr, enc, 1, subscribe)
			write(t, fr, 1, message(over, nil), false)
		}, true},
		{"a publish of the receive limit", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			open(t, fr, enc, 1, roomcastv1.BrokerService_Publish_FullMethodName)
			write(t, fr, 1, message(1<<20, make([]byte, 1000)), false)
		}, false},
		{"the second message of a frame over it", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			open(t, fr, enc, 1, subscribe)
			write(t, fr, 1, append(message(3, []byte("abc")), message(over, nil)...), false)
		}, true},
		{"a prefix split between frames, padded", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			open(t, fr, enc, 1, subscribe)
			m := message(over, nil)
			if err := fr.WriteDataPadded(1, false, m[:2], make([]byte, 7)); err != nil {
				t.Fatal(err)
			}
			write(t, fr, 1, m[2:], false)
		}, true},
		{"a padded frame within the limit", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			open(t, fr, enc, 1, subscribe)
			if err := fr.WriteDataPadded(1, false, message(20, make([]byte, 20)), make([]byte, 255)); err != nil {
				t.Fatal(err)
			}
			write(t, fr, 1, message(10, make([]byte, 10)), false)
		}, false},
		{"a second stream of the same header block", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			open(t, fr, enc, 1, subscribe)
			open(t, fr, enc, 3, subscribe) // indexed only: a repeat, not decoded again
			write(t, fr, 3, message(over, nil), false)
		}, true},
		{"a Watch request of its limit", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			open(t, fr, enc, 1, roomcastv1.BrokerService_Watch_FullMethodName)
			write(t, fr, 1, message(1<<20, nil), false)
		}, false},
		{"publishers ended and reset are forgotten", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			for id := uint32(1); id < 20; id += 2 {
				open(t, fr, enc, id, roomcastv1.BrokerService_PublishStream_FullMethodName)
				if id%4 == 1 {
					write(t, fr, id, message(1, []byte("x")), true)
				} else if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
					t.Fatal(err)
				}
			}
		}, false},
		{"publishers left open past the cap are forgotten, oldest first", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			for id := uint32(1); id < 12; id += 2 {
				open(t, fr, enc, id, roomcastv1.BrokerService_PublishStream_FullMethodName)
			}
			write(t, fr, 11, message(1<<20, make([]byte, 100)), false) // the newest: still not followed
			write(t, fr, 1, message(over, nil), false)                 // the oldest: followed again
		}, true},
		{"publishers left open past the cap", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			for id := uint32(1); id < 12; id += 2 {
				open(t, fr, enc, id, roomcastv1.BrokerService_PublishStream_FullMethodName)
			}
			write(t, fr, 11, message(1<<20, make([]byte, 100)), false)
		}, false},
		{"messages left unfinished past the cap", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			open(t, fr, enc, 1, roomcastv1.BrokerService_PublishStream_FullMethodName)
			for id := uint32(3); id < 10; id += 2 {
				open(t, fr, enc, id, subscribe)
				write(t, fr, id, message(100, make([]byte, 50)), false)
			}
		}, true},
		{"Subscribe streams left open keep nothing", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			for id := uint32(1); id < 20; id += 2 {
				open(t, fr, enc, id, subscribe)
				m := message(100, make([]byte, 100))
				write(t, fr, id, m[:50], false) // a message over two frames
				write(t, fr, id, m[50:], false)
			}
		}, false},
		{"too many messages left unfinished", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			for id := uint32(1); id < 8; id += 2 {
				open(t, fr, enc, id, subscribe)
				write(t, fr, id, message(100, make([]byte, 50)), false)
			}
		}, true},
		{"a health check over the slack", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			open(t, fr, enc, 1, "/grpc.health.v1.Health/Check")
			write(t, fr, 1, message(over, nil), false)
		}, true},
		{"a reflection request over the slack", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			open(t, fr, enc, 1, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
			write(t, fr, 1, message(over, nil), false)
		}, true},
		{"a publisher's block over CONTINUATION", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			openSplit(t, fr, enc, 1, roomcastv1.BrokerService_PublishStream_FullMethodName)
			write(t, fr, 1, message(1<<20, make([]byte, 100)), false) // not followed
		}, false},
		{"a Subscribe block over CONTINUATION", func(t *testing.T, fr *http2.Framer, enc func(...hpack.HeaderField) []byte) {
			openSplit(t, fr, enc, 1, roomcastv1.BrokerService_PublishStream_FullMethodName)
			openSplit(t, fr, enc, 3, subscribe)
			write(t, fr, 3, message(over, nil), false)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := h2Stream(t, func(fr *http2.Framer, enc func(...hpack.HeaderField) []byte) { tc.frames(t, fr, enc) })
			if dir := os.Getenv("ROOMCAST_WRITE_FUZZ_SEEDS"); dir != "" { // refreshes FuzzMessageGuard's seeds
				writeSeed(t, dir, tc.name, stream[len(http2.ClientPreface):])
			}
			for seed := range uint64(20) {
				err := messageScan(stream, 3, seed)
				if cut := err != nil; cut != tc.cut || cut && err != errMessageFlood {
					t.Fatalf("seed %d: the scanner ended with %v, want cut %v", seed, err, tc.cut)
				}
			}
		})
	}
}

// FuzzMessageGuard scans any bytes a client might send after its preface,
// split between reads two ways at random: the scanner must not panic, and
// must cut the connection at the same frame however its reads were split.
// Scanned a third time, with the server ending streams between reads, it
// must count what its entries hold.
// Its seeds in testdata are TestMessageGuardCutsWhatIsAnnouncedOverTheLimit's
// streams.
func FuzzMessageGuard(f *testing.F) {
	f.Fuzz(func(t *testing.T, frames []byte, seed uint64) {
		stream := append([]byte(http2.ClientPreface), frames...)
		a, b := messageScan(stream, 3, seed), messageScan(stream, 3, seed+1)
		if a != b {
			t.Fatalf("split one way the scanner ended with %v, the other %v", a, b)
		}
		messageScanEnding(t, stream, seed)
	})
}

// writeSeed writes frames as a seed of FuzzMessageGuard in dir.
func writeSeed(t *testing.T, dir, name string, frames []byte) {
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint64(0)\n", frames)
	if err := os.WriteFile(filepath.Join(dir, strings.NewReplacer(" ", "-", "'", "").Replace(name)), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
