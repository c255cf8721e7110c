package server

import (
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// The web handler's codecs. connect-go marshals what a handler sends
// through the codec named by the call's content type; these two know the
// session's frames (see codec.go). webProtoCodec appends a frame's shared
// entry buffers as they are: a Watch in binary sends the very bytes a gRPC
// Subscribe stream does, encoded once at publish, copied into the call's
// buffer and not encoded again. webJSONCodec renders each entry as a JSON
// fragment once, in a cache shared by every call (fragmentCache), and
// writes a batch as those fragments laid in a WatchResponse object: a JSON
// subscriber costs a copy of its fragments, not an encode.

// webProtoCodec is the binary codec, "proto".
type webProtoCodec struct{ limits requestLimits }

func (webProtoCodec) Name() string { return "proto" }

func (c webProtoCodec) Marshal(v any) ([]byte, error) { return c.MarshalAppend(nil, v) }

// MarshalAppend appends v's encoding to b: a frame's buffers as they are,
// anything else as protobuf.
func (webProtoCodec) MarshalAppend(b []byte, v any) ([]byte, error) {
	if f, ok := v.(*frame); ok {
		for _, buf := range f.bufs {
			b = append(b, buf.ReadOnlyData()...)
		}
		return b, nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("cannot encode %T, which is not a protobuf message", v)
	}
	return proto.MarshalOptions{}.MarshalAppend(b, m)
}

// Unmarshal decodes a request after the checks the gRPC codec makes on its
// bytes (see decode.go); the handler's read limit has bounded its size.
func (c webProtoCodec) Unmarshal(b []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("cannot decode into %T, which is not a protobuf message", v)
	}
	if err := precheck(b, m, c.limits); err != nil {
		return err
	}
	return proto.Unmarshal(b, m)
}

// webJSONCodec is the JSON codec, under name: "json", and "json;
// charset=utf-8", which connect-go keeps apart.
type webJSONCodec struct {
	name  string
	cache *fragmentCache
}

func (c webJSONCodec) Name() string { return c.name }

func (c webJSONCodec) Marshal(v any) ([]byte, error) { return c.MarshalAppend(nil, v) }

// MarshalAppend appends v as JSON to b: a frame as a WatchResponse's batch
// of cached fragments, anything else with protojson.
func (c webJSONCodec) MarshalAppend(b []byte, v any) ([]byte, error) {
	if f, ok := v.(*frame); ok {
		return c.cache.appendBatch(b, f)
	}
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("cannot encode %T, which is not a protobuf message", v)
	}
	return protojson.MarshalOptions{}.MarshalAppend(b, m)
}

func (c webJSONCodec) Unmarshal(b []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("cannot decode into %T, which is not a protobuf message", v)
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, m)
}

// defaultFragmentCacheBytes bounds the JSON fragments kept, with the
// entries they were rendered from: enough for every message published in
// the last moments to be rendered once however many JSON subscribers its
// room has, small beside the broker's backlog.
const defaultFragmentCacheBytes = 32 << 20

// fragmentShards spread the cache's lock.
const fragmentShards = 16

// fragmentCache holds the JSON fragment of each entry recently sent to a
// JSON Watch. Entries are keyed by their first byte's address: an entry's
// bytes are immutable and every frame shares them, and the key keeps its
// first buffer alive, so an address cannot name another entry while it is cached. Each
// shard keeps two generations, and drops the older when the newer fills its
// half of the bytes: a fragment in use stays, moved to the newer. An entry
// is rendered under its shard's lock, so once however many calls ask for it
// at once. It is safe for concurrent use.
type fragmentCache struct {
	seed    maphash.Seed
	shards  [fragmentShards]fragmentShard
	encodes atomic.Uint64 // fragments rendered: what the encode-once tests count
}

type fragmentShard struct {
	mu       sync.Mutex
	cur, old map[*byte]fragment
	bytes    int // in cur
	limit    int // of cur, at which it becomes old
}

// fragment is one entry as JSON, and which batch field it goes in.
type fragment struct {
	json     []byte
	presence bool
}

func newFragmentCache(maxBytes int) *fragmentCache {
	c := &fragmentCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].limit = maxBytes / fragmentShards / 2
	}
	return c
}

// Encodes reports how many fragments the cache has rendered.
func (c *fragmentCache) Encodes() uint64 { return c.encodes.Load() }

// appendBatch appends frame f, a SubscribeResponse batch, to b as a
// WatchResponse in JSON: {"batch":{"messages":[...],"presence":[...]}}.
// f.bufs[0] is the batch's header, the rest its entries.
func (c *fragmentCache) appendBatch(b []byte, f *frame) ([]byte, error) {
	if len(f.bufs) == 0 {
		return nil, fmt.Errorf("an empty frame")
	}
	frags := make([]fragment, 0, len(f.bufs)-1)
	messages := 0
	for bufs := f.bufs[1:]; len(bufs) > 0; {
		head := bufs[0].ReadOnlyData()
		size, err := entrySize(head)
		if err != nil {
			return nil, err
		}
		// A large message's entry is its head and then its payload
		// (wire.MessageEntryParts): the buffers up to its size.
		parts, have := 1, len(head)
		for ; have < size && parts < len(bufs); parts++ {
			have += bufs[parts].Len()
		}
		if have != size {
			return nil, fmt.Errorf("a batch entry of %d bytes in buffers of %d", size, have)
		}
		fr, err := c.fragment(head, bufs[1:parts], size)
		if err != nil {
			return nil, err
		}
		bufs = bufs[parts:]
		if !fr.presence {
			messages++
		}
		frags = append(frags, fr)
	}
	b = append(b, `{"batch":{`...)
	if messages > 0 {
		b = appendFragments(append(b, `"messages":[`...), frags, false)
		b = append(b, ']')
	}
	if messages < len(frags) {
		if messages > 0 {
			b = append(b, ',')
		}
		b = appendFragments(append(b, `"presence":[`...), frags, true)
		b = append(b, ']')
	}
	return append(b, "}}"...), nil
}

func appendFragments(b []byte, frags []fragment, presence bool) []byte {
	first := true
	for _, fr := range frags {
		if fr.presence != presence {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, fr.json...)
	}
	return b
}

// entrySize is the size of the batch entry that head begins: its tag, its
// length and the bytes that follow.
func entrySize(head []byte) (int, error) {
	_, _, n := protowire.ConsumeTag(head)
	if n < 0 {
		return 0, fmt.Errorf("a batch entry without a field tag")
	}
	v, m := protowire.ConsumeVarint(head[n:])
	if m < 0 || v > uint64(math.MaxInt32) {
		return 0, fmt.Errorf("a batch entry without a length")
	}
	return n + m + int(v), nil
}

// fragment returns the fragment of the entry of size bytes that is e and
// then more, rendering it if it is not cached.
func (c *fragmentCache) fragment(e []byte, more mem.BufferSlice, size int) (fragment, error) {
	if len(e) == 0 {
		return fragment{}, fmt.Errorf("an empty entry")
	}
	key := &e[0]
	sh := &c.shards[maphash.Comparable(c.seed, key)%fragmentShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if fr, ok := sh.cur[key]; ok {
		return fr, nil
	}
	fr, ok := sh.old[key]
	if !ok {
		whole := e
		if len(more) > 0 { // joined only to render
			whole = append(make([]byte, 0, size), e...)
			for _, b := range more {
				whole = append(whole, b.ReadOnlyData()...)
			}
		}
		var err error
		if fr, err = renderEntry(whole); err != nil {
			return fragment{}, err
		}
		c.encodes.Add(1)
	}
	sh.put(key, fr, len(e)) // the buffer its key keeps alive: a large payload apart is not
	return fr, nil
}

// put adds fr to the newer generation, which becomes the older once full.
func (sh *fragmentShard) put(key *byte, fr fragment, entryBytes int) {
	if sh.cur == nil || sh.bytes >= sh.limit {
		sh.old, sh.cur, sh.bytes = sh.cur, make(map[*byte]fragment), 0
	}
	sh.cur[key] = fr
	sh.bytes += len(fr.json) + entryBytes
}

// renderEntry renders e, a MessageBatch entry (see internal/wire), as the
// JSON of its Message or PresenceEvent.
func renderEntry(e []byte) (fragment, error) {
	num, typ, n := protowire.ConsumeTag(e)
	if n < 0 || typ != protowire.BytesType {
		return fragment{}, fmt.Errorf("a batch entry that is not a message field")
	}
	body, m := protowire.ConsumeBytes(e[n:])
	if m < 0 {
		return fragment{}, fmt.Errorf("a batch entry cut short")
	}
	var msg proto.Message
	switch num {
	case batchMessages:
		msg = new(roomcastv1.Message)
	case batchPresence:
		msg = new(roomcastv1.PresenceEvent)
	default:
		return fragment{}, fmt.Errorf("a batch entry of field %d", num)
	}
	if err := proto.Unmarshal(body, msg); err != nil {
		return fragment{}, err
	}
	b, err := protojson.Marshal(msg)
	if err != nil {
		return fragment{}, err
	}
	return fragment{json: b, presence: num == batchPresence}, nil
}

// The fields of MessageBatch an entry may be.
var (
	batchMessages = fieldNumber(&roomcastv1.MessageBatch{}, "messages")
	batchPresence = fieldNumber(&roomcastv1.MessageBatch{}, "presence")
)
