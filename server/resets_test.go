package server_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/server"
)

// A client that opens streams and resets them at once (HTTP/2 rapid reset)
// is sent GOAWAY and disconnected once past the limit, over plaintext and
// over TLS alike, while a client on another connection goes on as before.
// The flood is many times what the limit allows; after it comes a PING, so
// a server that let it through answers that PING instead of closing.
func TestRapidResetClosesTheConnection(t *testing.T) {
	const rate, burst, pairs = 100, 200, 20 * 200
	for _, tc := range rawTransports(t) {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			var log syncBuffer
			_, addr := start(t, append(tc.opts,
				server.WithMetrics(reg),
				server.WithLogger(slog.New(slog.NewTextHandler(&log, nil))),
				server.WithStreamResetRate(rate, burst),
			)...)
			ctx := testCtx(t)
			bystanderGoesOn := calmBystander(t, ctx, addr, tc.dial...)

			h2 := tc.connectRaw(t, addr)
			if sent, err := h2.RapidReset(addr, "/roomcast.v1.BrokerService/Publish", pairs); err != nil {
				t.Logf("the flood stopped after %d pairs: %v", sent, err)
			}
			expectCalmed(t, ctx, h2, fmt.Sprintf("%d stream resets", pairs))
			if got := counter(t, reg, "roomcast_reset_flood_closes_total"); got != 1 {
				t.Errorf("roomcast_reset_flood_closes_total = %v, want 1", got)
			}
			if line := log.String(); !strings.Contains(line, "rapid reset") || !strings.Contains(line, "peer="+h2.LocalAddr().String()) {
				t.Errorf("log %q does not say a rapid reset from %s was cut off", line, h2.LocalAddr())
			}
			bystanderGoesOn()
		})
	}
}

// A client that cancels a great many calls, but no faster than busy
// clients do, keeps its connection under the default limit: a publisher
// at 4,000 calls a second that cancels one call in ten, then, on the same
// connection, a subscriber process that closes a connection's worth of
// Subscribe streams at once, twice.
func TestCancellingCallsAtAnHonestRateIsNotCut(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, addr := start(t, server.WithMetrics(reg))
	ctx := testCtx(t)
	c := roomcastv1.NewBrokerServiceClient(servertest.Dial(t, addr))

	const rate, period = 4000, 500 * time.Millisecond
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	var wg sync.WaitGroup
	for i, end := 0, time.Now().Add(period); time.Now().Before(end); i++ {
		<-tick.C
		wg.Go(func() {
			callCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			if i%10 == 0 { // cancelled in flight, or before it is sent
				time.AfterFunc(100*time.Microsecond, cancel)
			}
			_, err := c.Publish(callCtx, &roomcastv1.PublishRequest{Room: "busy", Payload: &roomcastv1.PublishRequest_Text{Text: "x"}})
			if err != nil && callCtx.Err() == nil {
				t.Errorf("publish: %v", err)
			}
		})
	}
	wg.Wait()

	// One RST_STREAM for each stream. The server allows
	// DefaultMaxStreamsPerConnection calls in flight.
	const streams = server.DefaultMaxStreamsPerConnection - 1
	for range 2 {
		streamCtx, cancel := context.WithCancel(ctx)
		for range streams {
			s, err := c.Subscribe(streamCtx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Recv(); err != nil { // the session event: the stream is open
				t.Fatal(err)
			}
		}
		cancel()
	}

	publishText(t, ctx, c, "busy", "still connected")
	if got := counter(t, reg, "roomcast_reset_flood_closes_total"); got != 0 {
		t.Errorf("roomcast_reset_flood_closes_total = %v, want 0", got)
	}
}

// syncBuffer is a bytes.Buffer that is safe for concurrent use, for a
// logger's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
