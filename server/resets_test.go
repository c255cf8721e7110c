package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/rawh2"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testcert"
	"github.com/roomcast/roomcast/server"
)

// A client that opens streams and resets them at once (HTTP/2 rapid reset)
// is sent GOAWAY and disconnected once past the limit, over plaintext and
// over TLS alike, while a client on another connection goes on as before.
// The flood is many times what the limit allows; after it comes a PING, so
// a server that let it through answers that PING instead of closing.
func TestRapidResetClosesTheConnection(t *testing.T) {
	const rate, burst, pairs = 100, 200, 20 * 200
	ca := testcert.NewCA(t, "roomcast test CA")
	cert := ca.ServerCert(t)
	for _, tc := range []struct {
		name    string
		opts    []server.Option
		dial    []grpc.DialOption
		connect func(addr string) (net.Conn, error)
	}{
		{
			name:    "plaintext",
			connect: func(addr string) (net.Conn, error) { return net.Dial("tcp", addr) },
		},
		{
			name: "tls",
			opts: []server.Option{server.WithTransportCredentials(credentials.NewServerTLSFromCert(&cert))},
			dial: []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool()}))},
			connect: func(addr string) (net.Conn, error) {
				return tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2"}})
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			var log syncBuffer
			_, addr := start(t, append(tc.opts,
				server.WithMetrics(reg),
				server.WithLogger(slog.New(slog.NewTextHandler(&log, nil))),
				server.WithStreamResetRate(rate, burst),
			)...)
			ctx := testCtx(t)
			bystander := roomcastv1.NewBrokerServiceClient(servertest.Dial(t, addr, tc.dial...))
			sub := subscribe(t, ctx, bystander, "calm")
			publishText(t, ctx, bystander, "calm", "before")

			conn, err := tc.connect(addr)
			if err != nil {
				t.Fatal(err)
			}
			h2, err := rawh2.New(conn)
			if err != nil {
				t.Fatal(err)
			}
			defer h2.Close()
			if sent, err := h2.RapidReset(addr, "/roomcast.v1.BrokerService/Publish", pairs); err != nil {
				t.Logf("the flood stopped after %d pairs: %v", sent, err)
			}
			end, err := h2.Wait(ctx)
			if err != nil {
				t.Fatal("the server neither answered the PING nor closed the connection")
			}
			t.Logf("the server sent %v; reads ended with %v", end.Frames, end.Err)
			if end.PingAcked {
				t.Fatalf("the connection is still open after %d stream resets", pairs)
			}
			if end.GoAway == nil || *end.GoAway != http2.ErrCodeEnhanceYourCalm {
				t.Errorf("GOAWAY code %v, want %v", end.GoAway, http2.ErrCodeEnhanceYourCalm)
			}
			if got := counter(t, reg, "roomcast_reset_flood_closes_total"); got != 1 {
				t.Errorf("roomcast_reset_flood_closes_total = %v, want 1", got)
			}
			if line := log.String(); !strings.Contains(line, "rapid reset") || !strings.Contains(line, "peer="+h2.LocalAddr().String()) {
				t.Errorf("log %q does not say a rapid reset from %s was cut off", line, h2.LocalAddr())
			}

			publishText(t, ctx, bystander, "calm", "after")
			for _, want := range []string{"before", "after"} {
				if m := sub.next(); m.GetText() != want {
					t.Fatalf("bystander got %v, want %q", m, want)
				}
			}
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
