package server

import (
	"bytes"
	"math"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/vtcodec"
)

func marshalPublish(t testing.TB, req *roomcastv1.PublishRequest) []byte {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// within reports whether b's bytes lie in raw's.
func within(b, raw []byte) bool {
	if len(b) == 0 || len(raw) == 0 {
		return false
	}
	p, lo := uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(unsafe.Pointer(unsafe.SliceData(raw)))
	return p >= lo && p+uintptr(len(b)) <= lo+uintptr(len(raw))
}

func TestDecodePublishInPlaceAliasesTheData(t *testing.T) {
	data := bytes.Repeat([]byte("d"), 100<<10)
	want := &roomcastv1.PublishRequest{
		Room: "chat.lobby", ContentType: "application/octet-stream",
		Headers: map[string]string{"a": "1", "b": "2"}, SessionId: "s1", ExcludeSession: "s2", IdempotencyKey: "k",
		Payload: &roomcastv1.PublishRequest_Data{Data: data},
	}
	raw := marshalPublish(t, want)
	// An unknown field, after the data, is kept.
	raw = protowire.AppendTag(raw, 99, protowire.VarintType)
	raw = protowire.AppendVarint(raw, 7)
	orig := bytes.Clone(raw)

	got := new(roomcastv1.PublishRequest)
	done, err := decodePublishInPlace(raw, got)
	if !done || err != nil {
		t.Fatalf("decodePublishInPlace = %v, %v; want true, nil", done, err)
	}
	plain := new(roomcastv1.PublishRequest)
	if err := vtcodec.Unmarshal(orig, plain); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, plain) {
		t.Fatalf("decoded in place:\n%v\nwant what vtcodec decodes:\n%v", got, plain)
	}
	if !within(got.GetData(), raw) {
		t.Error("the data was copied, not left in the request's bytes")
	}
	if cap(got.GetData()) != len(got.GetData()) {
		t.Errorf("the data's capacity is %d, its length %d: an append would write over the request's next bytes", cap(got.GetData()), len(got.GetData()))
	}
	for name, s := range map[string]string{"room": got.GetRoom(), "content_type": got.GetContentType(), "session_id": got.GetSessionId(), "idempotency_key": got.GetIdempotencyKey()} {
		if within(unsafe.Slice(unsafe.StringData(s), len(s)), raw) {
			t.Errorf("%s aliases the request: it would hold all of it", name)
		}
	}
	if !bytes.Equal(raw, orig) {
		t.Error("decoding changed the request's bytes")
	}
}

func TestDecodePublishInPlaceLeavesTheRestAsUsual(t *testing.T) {
	big := bytes.Repeat([]byte("d"), 100<<10)
	data := func(b []byte) *roomcastv1.PublishRequest {
		return &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: b}}
	}
	text := marshalPublish(t, &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Text{Text: string(big)}})
	twice := marshalPublish(t, data(big))
	twice = append(twice, marshalPublish(t, data(big[:10]))...)
	small := marshalPublish(t, &roomcastv1.PublishRequest{Room: "r", Headers: map[string]string{"h": string(big[:10<<10])}, Payload: &roomcastv1.PublishRequest_Data{Data: big[:50<<10]}})
	wrongType := protowire.AppendVarint(protowire.AppendTag(marshalPublish(t, data(big)), publishData, protowire.VarintType), 1)
	truncated := marshalPublish(t, data(big))
	truncated = truncated[:len(truncated)-1]
	for name, raw := range map[string][]byte{
		"text":               text,
		"two payload fields": twice,
		"more than inPlaceSlack besides the data": small,
		"data of the wrong type":                  wrongType,
		"a truncated payload":                     truncated,
		"no payload":                              marshalPublish(t, &roomcastv1.PublishRequest{Room: "r"}),
		"nothing":                                 nil,
		"a tag cut short":                         {0x80},
		"a field with no value yet":               {byte(publishData)<<3 | byte(protowire.BytesType)},
	} {
		req := &roomcastv1.PublishRequest{Room: "left alone"}
		done, err := decodePublishInPlace(raw, req)
		if done || err != nil || req.GetRoom() != "left alone" {
			t.Errorf("%s: decodePublishInPlace = %v, %v and room %q; want false, nil and the request untouched", name, done, err, req.GetRoom())
		}
	}
}

// FuzzDecodePublishInPlace checks the in-place decoder against vtcodec's:
// whatever it decodes, it decodes to the same message, or refuses as
// vtcodec would, and it never changes the bytes it decodes.
func FuzzDecodePublishInPlace(f *testing.F) {
	data := bytes.Repeat([]byte{0xd}, 300)
	for _, req := range []*roomcastv1.PublishRequest{
		{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: data}},
		{Room: "r", Headers: map[string]string{"a": "1"}, SessionId: "s", Payload: &roomcastv1.PublishRequest_Data{Data: data}},
		{Room: "r", Payload: &roomcastv1.PublishRequest_Text{Text: string(data)}},
		{Room: "r"},
	} {
		b := marshalPublish(f, req)
		f.Add(b)
		f.Add(append(b, b...))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		inPlaceCandidate(framesOf(raw, 7)) // any bytes, in any frames: no panic
		orig := bytes.Clone(raw)
		got := new(roomcastv1.PublishRequest)
		done, err := decodePublishInPlace(raw, got)
		if !bytes.Equal(raw, orig) {
			t.Fatal("decoding changed the request's bytes")
		}
		if !done {
			return
		}
		want := new(roomcastv1.PublishRequest)
		wantErr := vtcodec.Unmarshal(orig, want)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("decoded in place with error %v; vtcodec's was %v", err, wantErr)
		}
		if err == nil && !proto.Equal(got, want) {
			t.Fatalf("decoded in place:\n%v\nvtcodec decodes:\n%v", got, want)
		}
		if err == nil && len(got.GetData()) > 0 && !within(got.GetData(), raw) { // empty data has no bytes to alias
			t.Fatal("decoded in place, but the data was copied")
		}
	})
}

// allocated is how many bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// framesOf splits raw into frames of size bytes; grpc-go hands a request
// over in frames of 16 KiB, one buffer a DATA frame.
func framesOf(raw []byte, size int) mem.BufferSlice {
	var frames mem.BufferSlice
	for b := raw; len(b) > 0; {
		n := min(len(b), size)
		frames = append(frames, mem.SliceBuffer(b[:n]))
		b = b[n:]
	}
	return frames
}

func TestInPlaceCandidates(t *testing.T) {
	big := bytes.Repeat([]byte("d"), 100<<10)
	headers := map[string]string{"h": string(big[:2<<10])}
	for _, c := range []struct {
		name string
		req  *roomcastv1.PublishRequest
		want bool
	}{
		{"data", &roomcastv1.PublishRequest{Room: "r", SessionId: "s", Payload: &roomcastv1.PublishRequest_Data{Data: big}}, true},
		{"text", &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Text{Text: string(big)}}, false},
		{"data under inPlaceMin", &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: big[:inPlaceMin-100]}}, false},
		{"data with 2 KiB of headers", &roomcastv1.PublishRequest{Room: "r", Headers: headers, Payload: &roomcastv1.PublishRequest_Data{Data: big}}, false},
	} {
		if got := inPlaceCandidate(framesOf(marshalPublish(t, c.req), 16<<10)); got != c.want {
			t.Errorf("%s: inPlaceCandidate = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestTheCodecDecodesALargePublishWithOneCopy(t *testing.T) {
	const size = 1 << 20
	c := newServerCodec(requestLimits{publish: size + 4<<10}, nil)
	decode := func(frames mem.BufferSlice) (*roomcastv1.PublishRequest, uint64, error) {
		var req roomcastv1.PublishRequest
		var err error
		n := allocated(func() {
			ch := checked{msg: &req}
			err = c.Unmarshal(frames, &ch)
			if err == nil {
				err = ch.err
			}
		})
		return &req, n, err
	}
	for _, tc := range []struct {
		name string
		req  *roomcastv1.PublishRequest
	}{
		// Over 1 MiB, the request no pooled buffer holds: decoded in
		// place, it is copied once, into a slice the data is left in.
		{"1 MiB of data", &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: bytes.Repeat([]byte("d"), size)}}},
		// Text, and data with more than inPlaceSlack besides it, are read
		// into a pooled buffer as before (warmed by the decodes before),
		// and only what the request keeps is copied out of it.
		{"512 KiB of text", &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Text{Text: strings.Repeat("t", size/2)}}},
		{"512 KiB of data with 2 KiB of headers", &roomcastv1.PublishRequest{Room: "r", Headers: map[string]string{"h": strings.Repeat("h", 2<<10)}, Payload: &roomcastv1.PublishRequest_Data{Data: bytes.Repeat([]byte("d"), size/2)}}},
	} {
		raw := marshalPublish(t, tc.req)
		frames := framesOf(raw, 16<<10)
		// The fewest bytes of several decodes, with no collection
		// meanwhile: a pooled buffer may still be missed (the race
		// detector drops a quarter of what sync.Pool is given, and a
		// buffer put on one P is not always found from another), but not
		// every time.
		gc := debug.SetGCPercent(-1)
		var req *roomcastv1.PublishRequest
		var err error
		n := uint64(math.MaxUint64)
		for range 8 {
			var m uint64
			if req, m, err = decode(frames); err != nil {
				break
			}
			n = min(n, m)
		}
		debug.SetGCPercent(gc)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !proto.Equal(req, tc.req) {
			t.Fatalf("%s: the request decoded is not the request sent", tc.name)
		}
		if n > uint64(len(raw))+uint64(len(raw))/2 {
			t.Errorf("%s: decoding %d bytes allocated %d; want one copy of them", tc.name, len(raw), n)
		}
	}

	// The checks on a request's bytes hold for those decoded in place.
	frames := framesOf(marshalPublish(t, &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: bytes.Repeat([]byte("d"), size)}}), 16<<10)
	tooBig := newServerCodec(requestLimits{publish: size / 2}, nil)
	ch := checked{msg: new(roomcastv1.PublishRequest)}
	if err := tooBig.Unmarshal(frames, &ch); err != nil || status.Code(ch.err) != codes.ResourceExhausted {
		t.Errorf("a publish over the limit: Unmarshal = %v, refusal %v; want nil and ResourceExhausted", err, ch.err)
	}
	headers := make(map[string]string, maxHeaders+1)
	for i := range maxHeaders + 1 {
		headers[string(rune('a'+i%26))+string(rune('a'+i/26))] = ""
	}
	many := marshalPublish(t, &roomcastv1.PublishRequest{Headers: headers, Payload: &roomcastv1.PublishRequest_Data{Data: bytes.Repeat([]byte("d"), inPlaceMin)}})
	if !inPlaceCandidate(framesOf(many, 16<<10)) {
		t.Fatal("the request with too many headers is not decoded in place: it tests nothing")
	}
	ch = checked{msg: new(roomcastv1.PublishRequest)}
	if err := c.Unmarshal(framesOf(many, 16<<10), &ch); err != nil || status.Code(ch.err) != codes.InvalidArgument {
		t.Errorf("a large publish with %d headers: Unmarshal = %v, refusal %v; want nil and InvalidArgument", maxHeaders+1, err, ch.err)
	}
}

// BenchmarkDecodePublish decodes Publish requests of 1 KiB to 1 MiB through
// the server's codec, from 16 KiB frames as grpc-go hands them over, into
// a request that is then dropped (as a retained message is, in time):
// B/op is the request's own memory, and the data decoded in place at 64
// KiB and over saves the copy of it.
//
//	go test -run '^$' -bench BenchmarkDecodePublish -benchmem -count 6 ./server/
func BenchmarkDecodePublish(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10, 128 << 10, 256 << 10, 1 << 20} {
		b.Run(strconv.Itoa(size>>10)+"KiB", func(b *testing.B) {
			raw := marshalPublish(b, &roomcastv1.PublishRequest{Room: "chat.lobby", Payload: &roomcastv1.PublishRequest_Data{Data: bytes.Repeat([]byte("d"), size)}})
			frames := framesOf(raw, 16<<10)
			c := newServerCodec(requestLimits{publish: size + messageOverhead}, nil)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				var req roomcastv1.PublishRequest
				ch := checked{msg: &req}
				if err := c.Unmarshal(frames, &ch); err != nil || ch.err != nil {
					b.Fatal(err, ch.err)
				}
			}
		})
	}
}
