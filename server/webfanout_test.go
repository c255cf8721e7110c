package server_test

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/gen/roomcast/v1/roomcastv1connect"
	"github.com/roomcast/roomcast/internal/testsupport/testcert"
	"github.com/roomcast/roomcast/server"
)

// Web Watch calls in binary, over HTTP/1.1 and h2c, and gRPC Subscribe
// streams on one room all receive every message, while the broker encodes
// each message once: the web calls send the same shared entries. JSON
// calls render each message as JSON once, however many they are.
func TestWatchSendsTheSharedEntries(t *testing.T) {
	const binary, jsonCalls, grpcSubs, messages = 6, 6, 4, 30
	srv, addr := start(t)
	web := startWeb(t, srv)
	ctx := testCtx(t)
	c := dial(t, addr)
	var watches []*webWatch
	for i := range binary {
		p := webProtocols[i%2] // connect binary, HTTP/1.1 and h2c
		watches = append(watches, watchWeb(t, ctx, p.client(t, web), "", rooms("big.room")...))
	}
	for i := range jsonCalls {
		p := webProtocols[2+i%2] // connect JSON, HTTP/1.1 and h2c
		watches = append(watches, watchWeb(t, ctx, p.client(t, web), "", rooms("big.room")...))
	}
	for _, w := range watches {
		w.greeting("big.room")
	}
	subs := make([]*subscriber, grpcSubs)
	for i := range subs {
		subs[i] = subscribe(t, ctx, c, "big.room")
	}
	for i := 1; i <= messages; i++ {
		publishText(t, ctx, c, "big.room", fmt.Sprint("m", i))
	}
	for wi, w := range watches {
		for i := 1; i <= messages; i++ {
			if m := w.next(); m.GetOffset() != uint64(i) || m.GetText() != fmt.Sprint("m", i) {
				t.Fatalf("watch %d: got offset %d %q, want %d", wi, m.GetOffset(), m.GetText(), i)
			}
		}
	}
	for si, s := range subs {
		for i := 1; i <= messages; i++ {
			if m := s.next(); m.GetOffset() != uint64(i) {
				t.Fatalf("subscriber %d: got offset %d, want %d", si, m.GetOffset(), i)
			}
		}
	}
	st := srv.Broker().Stats()
	if st.Encoded != messages {
		t.Errorf("%d encodes for %d messages to %d subscribers, want one each", st.Encoded, messages, len(watches)+grpcSubs)
	}
	if n := server.JSONFragmentsRendered(srv); n != messages {
		t.Errorf("%d JSON renderings for %d messages to %d JSON calls, want one each", n, messages, jsonCalls)
	}
}

// A web Watch that falls further behind than the backlog is cut off with
// RESOURCE_EXHAUSTED naming the last offset it was sent in each room, after
// it received, in order and without a gap, everything up to it.
func TestWatchSlowConsumerIsCutOffWithTheLastOffsetSent(t *testing.T) {
	for _, p := range []webProtocol{webProtocols[0], webProtocols[3]} {
		t.Run(p.name, func(t *testing.T) {
			// The write timeout is long: the call is cut off for its
			// backlog once its client reads again, not for a stalled write,
			// which would leave its last message incomplete. No byte rate:
			// how much the stalled call's connection buffers before its
			// writes block is the kernel's, and may pass a burst.
			srv, addr := start(t, server.WithBrokerOptions(broker.WithBacklog(8, 1<<20)), server.WithMaxMessageBytes(64<<10), server.WithWriteTimeout(time.Minute), server.WithPublishByteRate(0, 0))
			web := startWeb(t, srv)
			ctx := testCtx(t)
			c := dial(t, addr)
			w := watchWeb(t, ctx, p.client(t, web), "", rooms("firehose", "quiet")...)
			w.greeting("firehose", "quiet")
			// Far more than the sockets and HTTP/2 windows hold, while the
			// client reads nothing.
			payload := strings.Repeat("x", 60<<10)
			var published uint64
			for range 400 {
				published = publishText(t, ctx, c, "firehose", payload)
			}
			var got uint64
			for {
				m, err := w.nextErr()
				if err != nil {
					code, msg := errorOf(err)
					if code != codes.ResourceExhausted {
						t.Fatalf("call ended with %v, want RESOURCE_EXHAUSTED", err)
					}
					for _, want := range []string{fmt.Sprintf("firehose=%d", got), "quiet=0"} {
						if !strings.Contains(msg, want) {
							t.Errorf("message %q does not say %q", msg, want)
						}
					}
					break
				}
				if m.GetOffset() != got+1 {
					t.Fatalf("got %d after %d", m.GetOffset(), got)
				}
				got = m.GetOffset()
			}
			if got == 0 || got >= published {
				t.Errorf("received up to %d of %d", got, published)
			}
		})
	}
}

// Shutdown ends web Watch calls with UNAVAILABLE, as it does Subscribe
// streams, and returns once they have ended.
func TestShutdownEndsWebWatchesWithUnavailable(t *testing.T) {
	srv, _ := start(t)
	web := startWeb(t, srv)
	ctx := testCtx(t)
	var watches []*webWatch
	for _, p := range webProtocols {
		w := watchWeb(t, ctx, p.client(t, web), "", rooms("r")...)
		w.greeting("r")
		watches = append(watches, w)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	for _, w := range watches {
		if msg := w.expectEnd(codes.Unavailable); !strings.Contains(msg, "shutting down") {
			t.Errorf("message %q", msg)
		}
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// A web Watch whose client stops reading is cut off once a write has lasted
// past the write timeout: its connection's write is cut short (its last
// message cannot be completed), the call ends, and the server's other
// subscribers go on.
func TestWatchStalledWriteIsCutShort(t *testing.T) {
	for _, p := range []webProtocol{webProtocols[0], webProtocols[1]} {
		t.Run(p.name, func(t *testing.T) {
			// No byte rate, as above.
			srv, addr := start(t, server.WithMaxMessageBytes(64<<10), server.WithWriteTimeout(200*time.Millisecond), server.WithPublishByteRate(0, 0))
			web := startWeb(t, srv)
			ctx := testCtx(t)
			c := dial(t, addr)
			w := watchWeb(t, ctx, p.client(t, web), "", rooms("firehose")...)
			w.greeting("firehose")
			fast := subscribe(t, ctx, dial(t, addr), "firehose")
			payload := strings.Repeat("x", 60<<10)
			for srv.Broker().Stats().Lagged == 0 {
				off := publishText(t, ctx, c, "firehose", payload)
				if m := fast.next(); m.GetOffset() != off {
					t.Fatalf("fast subscriber got %d, want %d", m.GetOffset(), off)
				}
				if off > 100_000 {
					t.Fatal("the stalled call was never cut off")
				}
			}
			for {
				if _, err := w.nextErr(); err != nil {
					break // how it ends depends on where the write was cut
				}
			}
			off := publishText(t, ctx, c, "firehose", "after")
			if m := fast.next(); m.GetOffset() != off {
				t.Errorf("fast subscriber got %d, want %d", m.GetOffset(), off)
			}
		})
	}
}

// A panic in a web call's handler ends that call with INTERNAL; the server
// goes on serving.
func TestWebHandlerPanicEndsOnlyItsCall(t *testing.T) {
	srv, _ := start(t, server.WithPublishHook(func(req *roomcastv1.PublishRequest) {
		if req.GetRoom() == "boom" {
			panic("boom")
		}
	}))
	web := startWeb(t, srv)
	ctx := testCtx(t)
	c := webProtocols[0].client(t, web)
	if _, err := c.Publish(ctx, connect.NewRequest(&roomcastv1.PublishRequest{Room: "boom"})); connect.CodeOf(err) != connect.CodeInternal {
		t.Errorf("publish that panics: %v, want INTERNAL", err)
	}
	if _, err := c.Publish(ctx, connect.NewRequest(&roomcastv1.PublishRequest{Room: "fine"})); err != nil {
		t.Errorf("publish after the panic: %v", err)
	}
}

// With WithWebTLS, ServeWeb serves HTTPS: HTTP/2 by ALPN, so gRPC too, and
// HTTP/1.1, also when the configuration is made per handshake.
func TestServeWebOverTLS(t *testing.T) {
	ca := testcert.NewCA(t, "roomcast test CA")
	srv, _ := start(t)
	cert := ca.ServerCert(t)
	// As roomcast serve's mutual TLS does, a configuration per handshake.
	perClient := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	web := startWeb(t, srv, server.WithWebTLS(&tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return perClient, nil }}))
	base := "https://" + strings.TrimPrefix(web, "http://")
	ctx := testCtx(t)
	for _, tc := range []struct {
		name  string
		http2 bool
		opts  []connect.ClientOption
	}{
		{"grpc-h2", true, []connect.ClientOption{connect.WithGRPC()}},
		{"connect-http1", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, Protocols: new(http.Protocols)}
			tr.Protocols.SetHTTP1(!tc.http2)
			tr.Protocols.SetHTTP2(tc.http2)
			t.Cleanup(tr.CloseIdleConnections)
			hc := &http.Client{Transport: tr}
			if tc.http2 {
				resp, err := hc.Get(base + "/")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.ProtoMajor != 2 {
					t.Errorf("%s negotiated, want HTTP/2", resp.Proto)
				}
			}
			c := roomcastv1connect.NewBrokerServiceClient(hc, base, tc.opts...)
			w := watchWeb(t, ctx, c, "", rooms("secure")...)
			w.greeting("secure")
			resp, err := c.Publish(ctx, connect.NewRequest(&roomcastv1.PublishRequest{Room: "secure", Payload: &roomcastv1.PublishRequest_Text{Text: "hi"}}))
			if err != nil {
				t.Fatal(err)
			}
			if m := w.next(); m.GetOffset() != resp.Msg.GetOffset() {
				t.Errorf("got %v", m)
			}
		})
	}
}
