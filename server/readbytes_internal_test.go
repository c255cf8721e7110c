package server

import (
	"testing"
	"time"

	"github.com/roomcast/roomcast/auth"
)

// At the default read byte rate, honest readers are never refused: a
// client paging through history a page of 1000 messages of 1 KiB (about
// 1.1 MB with their envelopes) a second, three of them sharing a key, and
// a client that resyncs 16 rooms of 1000 such messages at once after a
// reconnect. What they owe nothing for is checked before each call, as the
// tap does.
func TestDefaultReadByteRateIsGenerousToHonestReaders(t *testing.T) {
	const page = 1000 * 1100
	r := newByteRate(DefaultReadByteRate, DefaultReadByteBurst)
	clock := time.Unix(1, 0)
	r.now = func() time.Time { return clock }
	id := &auth.Identity{Subject: "fleet", Method: auth.MethodAPIKey}
	for second := range 600 {
		for pager := range 3 {
			if wait := r.owing(id); wait > 0 {
				t.Fatalf("second %d: pager %d told to wait %v", second, pager, wait)
			}
			r.charge(id, page)
		}
		clock = clock.Add(time.Second)
	}
	resync := &auth.Identity{Subject: "reconnecting", Method: auth.MethodAPIKey}
	for room := range 16 {
		if wait := r.owing(resync); wait > 0 {
			t.Fatalf("room %d of a resync told to wait %v", room, wait)
		}
		r.charge(resync, page)
	}
}
