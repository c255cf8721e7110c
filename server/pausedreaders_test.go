package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/internal/servertest"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// A stream whose reader pauses after a refused command leaves what its
// client sends meanwhile unread, up to a receive window in grpc-go; so the
// streams paused at once are counted, over the server and per credential,
// and past either count a refused command ends its stream instead. The
// hook holds each reader in its pause, so the paused streams are exactly
// those the test made.
func TestPausedStreamsAreLimited(t *testing.T) {
	for _, tc := range []struct {
		name              string
		server, perCred   int
		wantEndingMessage string
	}{
		{"per credential", 100, 2, "this credential has 2 streams whose commands wait unread"},
		{"over the server", 2, 100, "the server has 2 streams whose commands wait unread"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held := newHeldPauses()
			_, addr := start(t, server.WithCommandRate(0.001, 1), server.WithMaxRefusedCommands(0),
				server.WithMaxPausedStreams(tc.server, tc.perCred), held.option())
			t.Cleanup(held.stop) // before the server stops
			ctx := testCtx(t)
			c := dial(t, addr)
			var streams []*subscriber
			for i := range 3 {
				streams = append(streams, subscribe(t, ctx, c, fmt.Sprint("r", i))) // each stream's burst
			}
			refuse := func(s *subscriber, id string) {
				t.Helper()
				if err := s.stream.Send(joinReq(id, "more", nil)); err != nil {
					t.Fatal(err)
				}
				resp, err := s.stream.Recv()
				if err != nil {
					t.Fatalf("command %s: %v, want its refusal", id, err)
				}
				if codes.Code(resp.GetReply().GetError().GetCode()) != codes.ResourceExhausted {
					t.Fatalf("command %s: %v, want it refused with RESOURCE_EXHAUSTED", id, resp)
				}
			}
			awaitPause := func(s *subscriber) {
				t.Helper()
				select {
				case p := <-held.pauses:
					if p.session != s.session {
						t.Fatalf("session %s paused, want %s", p.session, s.session)
					}
				case <-ctx.Done():
					t.Fatalf("session %s did not pause", s.session)
				}
			}
			for _, s := range streams[:2] {
				refuse(s, "a")
				awaitPause(s)
			}

			third := streams[2]
			if err := third.stream.Send(joinReq("a", "more", nil)); err != nil {
				t.Fatal(err)
			}
			var ended error
			for ended == nil { // its refusal's reply may come first
				var resp *roomcastv1.SubscribeResponse
				if resp, ended = third.stream.Recv(); ended == nil && resp.GetReply() == nil {
					t.Fatalf("the third stream got %v, want its refusal and its end", resp)
				}
			}
			if status.Code(ended) != codes.ResourceExhausted || !strings.Contains(status.Convert(ended).Message(), tc.wantEndingMessage) {
				t.Fatalf("the third stream paused with two paused already: %v, want it ended with RESOURCE_EXHAUSTED: %q", ended, tc.wantEndingMessage)
			}

			// A pause over gives its place back: the first stream, refused
			// again, pauses again. (Both paused streams are let go, as which
			// waiting hook a release reaches is the runtime's.)
			held.release <- struct{}{}
			held.release <- struct{}{}
			refuse(streams[0], "b")
			awaitPause(streams[0])
		})
	}
}

// A reader whose turns are behind, because its client reads none of the
// stream's messages and replies, leaves what the client sends unread too:
// once it has waited a while for them, it counts as paused, and past the
// credential's count the next such stream ends instead.
func TestReadersBehindUnreadRepliesCountAsPaused(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, addr := start(t, server.WithMaxPausedStreams(100, 1), server.WithWriteTimeout(time.Minute), server.WithMetrics(reg))
	ctx := testCtx(t)
	pub := dial(t, addr)
	stalled := func() *subscriber {
		// A fixed window, so that the server's writes wait once it is full.
		c := roomcastv1.NewBrokerServiceClient(servertest.Dial(t, addr, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10)))
		return subscribe(t, ctx, c, "busy")
	}
	first, second := stalled(), stalled()
	payload := strings.Repeat("x", 32<<10)
	for range 20 { // 640 KiB that neither subscriber reads
		publishText(t, ctx, pub, "busy", payload)
	}
	fill := func(s *subscriber) {
		for i := range 2 * 16 { // past the turns' queue
			if err := s.stream.Send(joinReq(fmt.Sprint(i), fmt.Sprint("room", i), nil)); err != nil {
				return // the stream ended
			}
		}
	}
	fill(first)
	waitGauge(t, ctx, reg, "roomcast_paused_streams", 1) // the first, behind its unread replies
	fill(second)
	// Reading the stream would let its turns go on: its end comes first.
	untilMetric(t, ctx, "roomcast_paused_stream_ends_total", 1, func() float64 {
		return counter(t, reg, "roomcast_paused_stream_ends_total")
	})
	var err error
	for err == nil {
		_, err = second.stream.Recv() // its messages, then how it ended
	}
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "this credential has 1 streams whose commands wait unread") {
		t.Fatalf("the second stream behind its replies, with the first paused: %v, want it ended with RESOURCE_EXHAUSTED", err)
	}
	if n := gaugeValue(t, reg, "roomcast_paused_streams"); n != 1 {
		t.Errorf("roomcast_paused_streams = %v, want the first still paused", n)
	}
}

// heldPauses is a read pause hook that holds each paused reader until the
// test releases it, telling the test of each pause first.
type heldPauses struct {
	pauses  chan heldPause
	release chan struct{}
	done    chan struct{}
}

// heldPause is one reader's pause.
type heldPause struct {
	session string
	d       time.Duration
}

func newHeldPauses() *heldPauses {
	return &heldPauses{pauses: make(chan heldPause), release: make(chan struct{}), done: make(chan struct{})}
}

// option installs the hook; stop, a cleanup registered after the server's
// start (so that it runs before the server stops), lets every reader go.
func (h *heldPauses) option() server.Option {
	return server.WithReadPauseHook(func(id string, d time.Duration) {
		select {
		case h.pauses <- heldPause{id, d}:
		case <-h.done:
			return
		}
		select {
		case <-h.release:
		case <-h.done:
		}
	})
}

func (h *heldPauses) stop() { close(h.done) }
