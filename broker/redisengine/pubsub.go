package redisengine

import (
	"context"
	"errors"
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
// session the one Track subscribes on, resync every room, then send the
// SUBSCRIBEs and UNSUBSCRIBEs asked for until the connection breaks or the
// engine closes. It reports whether the session went live.
func (s *shard) session() (live bool) {
	e := s.e
	d, _ := s.client.Dedicate()
	defer d.Close() // never reused: closing it ends its subscriptions too
	broken := d.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: s.onMessage})
	sess := &session{client: d, down: make(chan struct{})}
	defer close(sess.down)
	e.stats.sessions.Add(1)

	s.mu.RLock()
	rooms := make([]*track, 0, len(s.rooms))
	for _, t := range s.rooms {
		rooms = append(rooms, t)
	}
	s.mu.RUnlock()
	if err := sess.send(e, true, channelsOf(rooms)); err != nil {
		return false
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
	defer func() {
		s.mu.Lock()
		s.sess, s.up = nil, make(chan struct{})
		for _, req := range s.subs {
			req.done <- errors.New("the PUB/SUB connection broke")
		}
		s.subs = nil
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
			if err := s.flush(sess); err != nil {
				return true
			}
		}
	}
}

// flush sends UNSUBSCRIBE for the rooms dropped and not tracked again, then
// SUBSCRIBE for the rooms Tracks wait for, in batches. The decisions are
// taken now, under mu, so that an UNSUBSCRIBE never passes the SUBSCRIBE of
// a Track that came after it.
func (s *shard) flush(sess *session) error {
	s.mu.Lock()
	var gone []string
	for _, room := range s.unsubs {
		if s.rooms[room] == nil {
			gone = append(gone, s.e.channel(room))
		}
	}
	s.unsubs = nil
	s.mu.Unlock()
	if err := sess.send(s.e, false, gone); err != nil {
		return err
	}
	s.mu.Lock()
	reqs := s.subs
	s.subs = nil
	s.mu.Unlock()
	for len(reqs) > 0 {
		batch := reqs[:min(subscribeBatch, len(reqs))]
		reqs = reqs[len(batch):]
		rooms := make([]*track, len(batch))
		for i, req := range batch {
			rooms[i] = req.t
		}
		err := sess.send(s.e, true, channelsOf(rooms))
		if err == nil {
			s.mu.Lock()
			for _, t := range rooms {
				t.subGen = sess.gen
			}
			s.mu.Unlock()
		}
		for _, req := range batch {
			req.done <- err
		}
		if err != nil {
			for _, req := range reqs {
				req.done <- err
			}
			return err
		}
	}
	return nil
}

// send subscribes (or unsubscribes) channels, in batches, each with its
// own timeout, so that many rooms cannot time the whole out.
func (sess *session) send(e *Engine, subscribe bool, channels []string) error {
	d := sess.client
	for len(channels) > 0 {
		batch := channels[:min(subscribeBatch, len(channels))]
		channels = channels[len(batch):]
		var cmd rueidis.Completed
		if subscribe {
			cmd = d.B().Subscribe().Channel(batch...).Build()
		} else {
			cmd = d.B().Unsubscribe().Channel(batch...).Build()
		}
		ctx, cancel := e.bound(context.Background())
		err := d.Do(ctx, cmd).Error()
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

func channelsOf(rooms []*track) []string {
	out := make([]string, len(rooms))
	for i, t := range rooms {
		out[i] = t.channel
	}
	return out
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
		ev, err := parseEvent(m.Message)
		if err != nil {
			s.e.stats.badFrames.Add(1)
			return
		}
		s.mu.RLock()
		tracked := s.rooms[room] != nil
		s.mu.RUnlock()
		if tracked {
			s.e.deliverEvent(room, ev)
		}
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
