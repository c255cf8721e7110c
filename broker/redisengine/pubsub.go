package redisengine

import (
	"context"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// subscribeBatch bounds the channels of one SUBSCRIBE or UNSUBSCRIBE.
const subscribeBatch = 512

// session is one PUB/SUB connection of a shard, dedicated to it. It never
// reconnects by itself: when it breaks, the frames sent meanwhile are lost,
// so a new session subscribes every tracked room again and then resyncs
// each from its stream. (rueidis's Receive would resubscribe silently,
// hiding the loss.)
type session struct {
	client rueidis.DedicatedClient
	gen    uint64
	down   chan struct{} // closed when the session ended
}

// run keeps a PUB/SUB session up until the engine closes, on a goroutine
// of the engine's. After a session that went live it reconnects at once
// (frames are being lost meanwhile); after one that did not, it backs off
// from 50 ms to 2 s.
func (s *shard) run() {
	e := s.e
	var backoff time.Duration
	for !e.isClosed() {
		if live := s.session(); live {
			backoff = 0
		}
		if backoff > 0 {
			select {
			case <-e.life.Done():
			case <-time.After(backoff):
			}
		}
		backoff = min(max(2*backoff, 50*time.Millisecond), 2*time.Second)
	}
}

// session runs one PUB/SUB session: subscribe every tracked room, make the
// session the one Track subscribes on, resync every room, then send
// UNSUBSCRIBEs when asked until the connection breaks or the engine
// closes. It reports whether the session went live.
func (s *shard) session() (live bool) {
	e := s.e
	d, _ := s.client.Dedicate()
	defer d.Close() // never reused: closing it ends its subscriptions too
	broken := d.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: s.onMessage})
	sess := &session{client: d, down: make(chan struct{})}
	defer close(sess.down)
	e.stats.sessions.Add(1)

	s.subMu.Lock()
	s.mu.RLock()
	rooms := make([]*track, 0, len(s.rooms))
	for _, t := range s.rooms {
		rooms = append(rooms, t)
	}
	s.mu.RUnlock()
	for i := 0; i < len(rooms); i += subscribeBatch {
		batch := rooms[i:min(i+subscribeBatch, len(rooms))]
		channels := make([]string, len(batch))
		for j, t := range batch {
			channels[j] = t.channel
		}
		ctx, cancel := e.bound(context.Background()) // per batch: many rooms may take many timeouts' worth
		err := d.Do(ctx, d.B().Subscribe().Channel(channels...).Build()).Error()
		cancel()
		if err != nil {
			s.subMu.Unlock()
			return false
		}
	}
	s.mu.Lock()
	s.gen++
	sess.gen = s.gen
	for _, t := range rooms {
		t.subGen = sess.gen
	}
	s.sess = sess
	close(s.up)
	s.mu.Unlock()
	s.subMu.Unlock()
	defer func() {
		s.mu.Lock()
		s.sess, s.up = nil, make(chan struct{})
		s.mu.Unlock()
	}()

	// Frames of these rooms may have been lost since the last session:
	// read their streams after what their Sinks have.
	for _, t := range rooms {
		t.mu.Lock()
		t.wantSync()
		t.mu.Unlock()
	}
	for {
		select {
		case <-broken:
			return true
		case <-e.life.Done():
			return true
		case <-s.kick:
			if err := s.unsubscribe(sess); err != nil {
				return true
			}
		}
	}
}

// unsubscribe sends UNSUBSCRIBE for the rooms dropped since the last call
// that have not been tracked again. Holding subMu, it cannot pass a Track's
// SUBSCRIBE of the same room on the wire.
func (s *shard) unsubscribe(sess *session) error {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	s.mu.Lock()
	var channels []string
	for _, room := range s.unsubs {
		if s.rooms[room] == nil {
			channels = append(channels, s.e.channel(room))
		}
	}
	s.unsubs = nil
	s.mu.Unlock()
	d := sess.client
	for i := 0; i < len(channels); i += subscribeBatch {
		ctx, cancel := s.e.bound(context.Background())
		err := d.Do(ctx, d.B().Unsubscribe().Channel(channels[i:min(i+subscribeBatch, len(channels))]...).Build()).Error()
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// onMessage takes a frame on the session's reader goroutine: it must not
// block, and it does not (see track.receive).
func (s *shard) onMessage(m rueidis.PubSubMessage) {
	room, ok := s.e.roomOf(m.Channel)
	if !ok {
		return
	}
	if strings.HasPrefix(m.Message, "p:") {
		s.e.stats.events.Add(1)
		return
	}
	s.e.stats.frames.Add(1)
	f, err := parseFrame(m.Message)
	if err != nil {
		s.e.stats.badFrames.Add(1)
		return
	}
	s.mu.RLock()
	t := s.rooms[room]
	s.mu.RUnlock()
	if t != nil {
		t.receive(f)
	}
}
