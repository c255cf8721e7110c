package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/gen/roomcast/v1/roomcastv1connect"
	"github.com/roomcast/roomcast/internal/rawh2"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testcert"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// webTransport is one way ServeWeb serves HTTP/2, and how a raw client
// reaches it.
type webTransport struct {
	name string
	web  []server.WebOption
	raw  rawTransport
}

// webTransports are h2c, and HTTP/2 by ALPN over TLS with a CA of the
// test's own.
func webTransports(t testing.TB) []webTransport {
	ca := testcert.NewCA(t, "roomcast test CA")
	cert := ca.ServerCert(t)
	return []webTransport{
		{name: "h2c", raw: rawTransport{connect: func(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }}},
		{
			name: "tls",
			web:  []server.WebOption{server.WithWebTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})},
			raw: rawTransport{
				connect: func(addr string) (net.Conn, error) {
					c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2"}})
					if err == nil && c.ConnectionState().NegotiatedProtocol != "h2" {
						c.Close()
						return nil, fmt.Errorf("negotiated %q, want h2", c.ConnectionState().NegotiatedProtocol)
					}
					return c, err
				},
				wrap: func(c net.Conn) net.Conn {
					return tls.Client(c, &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2"}, ServerName: "127.0.0.1"})
				},
			},
		},
	}
}

// serveWeb starts a server with opts and its web listener over tr, and
// returns the gRPC port's address and the web listener's.
func (tr webTransport) serveWeb(t *testing.T, opts ...server.Option) (grpcAddr, webAddr string) {
	t.Helper()
	srv, addr := start(t, opts...)
	return addr, strings.TrimPrefix(startWeb(t, srv, tr.web...), "http://")
}

// The web listener's HTTP/2 connections are held to the gRPC port's
// limits on resets (rapid reset) and header lists (the header bomb), in h2c
// and over TLS: net/http counts neither, and before, these attacks cost the
// server 6.6 and 8.9 s of CPU in 5 s on the web listener. Each ends with
// GOAWAY ENHANCE_YOUR_CALM (a PING sent after is never answered), counted
// with the gRPC port's, while a gRPC client goes on.
func TestWebListenerCutsResetsAndHeaderBombs(t *testing.T) {
	for _, tr := range webTransports(t) {
		t.Run(tr.name+"/rapid reset", func(t *testing.T) {
			reg := prometheus.NewRegistry()
			addr, web := tr.serveWeb(t, server.WithMetrics(reg), server.WithStreamResetRate(100, 200))
			ctx := testCtx(t)
			bystanderGoesOn := calmBystander(t, ctx, addr)
			h2 := tr.raw.connectRaw(t, web)
			if sent, err := h2.RapidReset(web, roomcastv1.BrokerService_Publish_FullMethodName, 4000); err != nil {
				t.Logf("the flood stopped after %d pairs: %v", sent, err)
			}
			expectCalmed(t, ctx, h2, "4000 stream resets")
			if got := counter(t, reg, "roomcast_reset_flood_closes_total"); got != 1 {
				t.Errorf("roomcast_reset_flood_closes_total = %v, want 1", got)
			}
			bystanderGoesOn()
		})
		t.Run(tr.name+"/header bomb", func(t *testing.T) {
			reg := prometheus.NewRegistry()
			addr, web := tr.serveWeb(t, server.WithMetrics(reg))
			ctx := testCtx(t)
			bystanderGoesOn := calmBystander(t, ctx, addr)
			sendHeaderBomb(t, ctx, tr.raw.connectRaw(t, web), reg)
			bystanderGoesOn()
		})
	}
}

// A header list of exactly what net/http takes on the web listener (its
// MaxHeaderBytes, and 10 fields of 32 bytes for HTTP/2) is served; one a
// byte longer is refused by net/http (431), on a connection that goes on;
// the scanner cuts only a list over twice net/http's limit.
func TestWebListenerServesHeaderListsUpToNetHTTPsLimit(t *testing.T) {
	const limit = 16 << 10
	reg := prometheus.NewRegistry()
	_, web := webTransports(t)[0].serveWeb(t, server.WithMetrics(reg), server.WithMaxHeaderBytes(limit))
	ctx := testCtx(t)
	h := dialRaw(t, web)
	method := roomcastv1.BrokerService_Publish_FullMethodName
	// padTo returns fields that make a call's list size bytes, none longer
	// than 8 KiB (net/http fails the connection for one string past its
	// list limit).
	padTo := func(size int) []hpack.HeaderField {
		var fields []hpack.HeaderField
		for i := 0; ; i++ {
			f := hpack.HeaderField{Name: fmt.Sprintf("x-pad-%d", i)}
			rest := size - int(listSize(method, append(fields, f)))
			if rest <= 8<<10 {
				f.Value = strings.Repeat("p", rest)
				return append(fields, f)
			}
			f.Value = strings.Repeat("p", 4<<10)
			fields = append(fields, f)
		}
	}
	id, err := rawCall(h, method, padTo(limit+10*32), true)
	if err != nil {
		t.Fatal(err)
	}
	if end, err := h.WaitStream(ctx, id); err != nil || end.Reset || end.Status == "" {
		t.Fatalf("a call with a list of %d bytes ended with %+v (%v); want a response", limit+10*32, end, err)
	}
	// One byte over: net/http answers 431, and the connection goes on. (A
	// list nearer twice the limit would not fit the one HEADERS frame of
	// 16 KiB that this client sends.)
	if _, err := rawCall(h, method, padTo(limit+10*32+1), true); err != nil {
		t.Fatal(err)
	}
	if err := h.Probe(1); err != nil {
		t.Fatal(err)
	}
	if _, err := h.WaitProbe(ctx, 1); err != nil {
		t.Fatalf("the connection closed after a list one byte over net/http's limit: %v", err)
	}
	expectClosedForOneByteOver(t, ctx, h, reg, method, padTo(2*(limit+10*32)+1)...)
}

// The web listener's request frames are paced in the address's bucket,
// in h2c and over TLS: padded DATA frames that carry nothing on a Publish
// call without a credential, and PRIORITY frames (attack (n), 9.6 s of CPU
// in 5 s before); WINDOW_UPDATE and PING frames the server's writes did not
// ask for (attack (o), 7.4 s). The server answers a PING sent after them only once it
// has read them at the pace, and counts the wait.
func TestWebListenerPacesRequestFrames(t *testing.T) {
	const rate, frames = 2000, 3000
	const allowances = 32 // control frames free before the server writes
	floods := []struct {
		name  string
		frame func(fr *http2.Framer, id uint32, i int) error
	}{
		{"frames that carry little", func(fr *http2.Framer, id uint32, i int) error {
			if i%2 == 0 {
				return fr.WriteDataPadded(id, false, nil, make([]byte, 8))
			}
			return fr.WritePriority(id+2, http2.PriorityParam{StreamDep: id, Weight: 15})
		}},
		// Past the allowance that the server's writes earn: net/http
		// answers every PING, and strikes none.
		{"window updates and pings", func(fr *http2.Framer, id uint32, i int) error {
			if i%2 == 0 {
				return fr.WriteWindowUpdate(0, 1<<10)
			}
			return fr.WritePing(false, [8]byte{byte(i), byte(i >> 8), 0xee})
		}},
	}
	for _, tr := range webTransports(t) {
		for _, fl := range floods {
			t.Run(tr.name+"/"+fl.name, func(t *testing.T) {
				reg := prometheus.NewRegistry()
				_, web := tr.serveWeb(t, server.WithMetrics(reg), server.WithRequestFrameRate(rate))
				ctx := within(t, 20*time.Second)
				c := tr.raw.connectRaw(t, web)
				id, err := rawCall(c, roomcastv1.BrokerService_Publish_FullMethodName, nil, false)
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				if err := c.Frames(func(fr *http2.Framer) error {
					for i := range frames {
						if err := fl.frame(fr, id, i); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if err := c.Probe(1); err != nil {
					t.Fatal(err)
				}
				if _, err := c.WaitProbe(ctx, 1); err != nil {
					t.Fatalf("the server did not answer after the frames: %v", err)
				}
				took := time.Since(start)
				least := time.Duration(frames-rate-allowances) * time.Second / rate
				if w := counter(t, reg, "roomcast_request_frames_paced_seconds_total"); took < least || w <= 0 {
					t.Fatalf("%d frames read in %v, with %v s counted paced; want at least %v, counted", frames, took, w, least)
				}
			})
		}
	}
}

// Request bodies begun and not finished on the web listener count toward
// the server's budget of unfinished requests, as the gRPC port's
// publishes do: past it, the connection of the address that holds the
// most is closed with GOAWAY, while another address's calls finish. A
// body counts from its first DATA frame until the client ends it. Before,
// connect-go buffered every such body: 1000 publishes announced at 1 MiB
// and held short of their end took 2.7 GB (attack (m) on the web
// listener).
func TestWebUnfinishedBodiesPastTheBudgetCloseTheLargest(t *testing.T) {
	for _, tr := range webTransports(t) {
		t.Run(tr.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			addr, web := tr.serveWeb(t, server.WithMetrics(reg),
				server.WithMaxMessageBytes(unfinishedMaxMessage),
				server.WithMaxUnfinishedBytes(unfinishedBudget, unfinishedShare),
				frozenPenalties())
			ctx := within(t, 20*time.Second)
			check := calmBystander(t, ctx, addr)
			msg := publishBytes(t, "held", 60<<10)

			other := tr.raw.from("127.0.0.4").connectRaw(t, web)
			kept := holdPublishes(t, other, 2, msg, 30<<10)
			if got, want := gaugeValue(t, reg, "roomcast_unfinished_request_bytes"), float64(2*(len(msg)-30<<10)); got != want {
				t.Fatalf("roomcast_unfinished_request_bytes = %v, want %v", got, want)
			}

			attacker := tr.raw.from("127.0.0.3").connectRaw(t, web)
			sendPublishes(attacker, 20, msg[:len(msg)-1]) // 1.2 MB; it fails once the server closes it
			end, err := attacker.Wait(ctx)
			if err != nil || end.GoAway == nil || *end.GoAway != http2.ErrCodeEnhanceYourCalm {
				t.Fatalf("the attacker's connection: %+v, %v; want it closed with GOAWAY (ENHANCE_YOUR_CALM)", end, err)
			}
			if n := counter(t, reg, "roomcast_unfinished_request_closes_total"); n != 1 {
				t.Errorf("roomcast_unfinished_request_closes_total = %v, want 1", n)
			}

			for _, id := range kept {
				if err := finishRequest(other, id, msg[len(msg)-30<<10:]); err != nil {
					t.Fatal(err)
				}
				if end, err := other.WaitStream(ctx, id); err != nil || end.Status != "0" {
					t.Fatalf("the other address's publish ended %+v, %v; want OK", end, err)
				}
			}
			if got := gaugeValue(t, reg, "roomcast_unfinished_request_bytes"); got != 0 {
				t.Errorf("roomcast_unfinished_request_bytes = %v once every body ended, want 0", got)
			}
			check()
		})
	}
}

// A request for a path the web listener does not serve (a Subscribe call,
// which only the gRPC port serves) fails with UNIMPLEMENTED and counts as
// a refused call: past --max-refused-calls within a second its connection
// is closed. Before, a credential's loop of them cost the server 5 s of
// CPU in 5 s as plain 404s.
func TestWebRequestsForOtherPathsAreRefusedCalls(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv, _ := start(t, server.WithMetrics(reg), server.WithMaxRefusedCalls(20))
	web := strings.TrimPrefix(startWeb(t, srv), "http://")
	ctx := testCtx(t)
	c := roomcastv1.NewBrokerServiceClient(servertest.Dial(t, web))
	var unimplemented, closed int
	for range 100 {
		s, err := c.Subscribe(ctx)
		if err == nil {
			_, err = s.Recv()
		}
		switch status.Code(err) {
		case codes.Unimplemented:
			unimplemented++
		case codes.Unavailable:
			closed++
		default:
			t.Fatalf("a Subscribe call on the web listener: %v; want UNIMPLEMENTED, or UNAVAILABLE once closed", err)
		}
		if closed > 0 {
			break
		}
	}
	if unimplemented < 20 || closed == 0 {
		t.Fatalf("%d calls refused UNIMPLEMENTED, %d UNAVAILABLE; want 20 at least, then the connection closed", unimplemented, closed)
	}
	if n := counter(t, reg, "roomcast_connections_refusal_closes_total"); n != 1 {
		t.Errorf("roomcast_connections_refusal_closes_total = %v, want 1", n)
	}
}

// A web connection whose calls keep being refused has its reads held
// while the tap pauses the refused call, as a gRPC connection's are (the
// tap runs on a gRPC connection's reader, but on a web call's handler):
// past its first hundred refusals within a second, a PING sent during a
// pause is answered only once the pause is over.
func TestWebRefusalsHoldTheConnectionsReads(t *testing.T) {
	type paused struct {
		d  time.Duration
		at time.Time // when the hook ran: the reads were held by then
	}
	pauses := make(chan paused, 1000)
	srv, _ := servertest.Start(t, server.WithAuthenticator(testjwt.Authenticator(t)),
		server.WithMaxRefusedCalls(0), server.WithTapPauseHook(func(d time.Duration) { pauses <- paused{d, time.Now()} }))
	web := strings.TrimPrefix(startWeb(t, srv), "http://")
	ctx := within(t, 20*time.Second)
	h := dialRaw(t, web)
	const long = 64 * time.Millisecond
	// The connection's first 100 refusals within a second are not paused:
	// sent at once, so that the paused ones come within the same second
	// however loaded the machine.
	var first []uint32
	for range 100 {
		id, err := rawCall(h, roomcastv1.BrokerService_Publish_FullMethodName, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		first = append(first, id)
	}
	for _, id := range first {
		if end, err := h.WaitStream(ctx, id); err != nil || end.Status != "16" {
			t.Fatalf("a call ended %+v, %v; want UNAUTHENTICATED", end, err)
		}
	}
	var pause time.Duration
	for i := 100; pause < long; i++ {
		if i > 200 {
			t.Fatalf("%d calls refused, no pause of %v", i, long)
		}
		id, err := rawCall(h, roomcastv1.BrokerService_Publish_FullMethodName, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		// The hook runs once the reads are held, and the call is answered
		// after the pause: the PING goes out during it.
		var at time.Time
		select {
		case p := <-pauses:
			pause, at = p.d, p.at
		case end := <-streamEnd(ctx, h, id):
			if end.Status != "16" {
				t.Fatalf("call %d ended %+v; want UNAUTHENTICATED", i, end)
			}
			continue
		}
		if err := h.Probe(uint64(i + 1)); err != nil {
			t.Fatal(err)
		}
		if _, err := h.WaitProbe(ctx, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(at); pause >= long && took < pause*3/4 {
			t.Fatalf("a PING during a pause of %v was answered %v after the pause began", pause, took)
		}
		if _, err := h.WaitStream(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}

// streamEnd waits for stream id of c to end, on a channel.
func streamEnd(ctx context.Context, c *rawh2.Conn, id uint32) <-chan rawh2.StreamEnd {
	ch := make(chan rawh2.StreamEnd, 1)
	go func() {
		end, _ := c.WaitStream(ctx, id)
		ch <- end
	}()
	return ch
}

// A web request body whose client never ends it stops counting toward the
// unfinished budget once the server ends its stream (here, refusing the
// call from its headers): the scanner skims the server's writes for it.
func TestWebBodiesTheServerEndedHoldNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv, _ := servertest.Start(t, server.WithAuthenticator(testjwt.Authenticator(t)), server.WithMetrics(reg))
	web := strings.TrimPrefix(startWeb(t, srv), "http://")
	ctx := within(t, 10*time.Second)
	h := dialRaw(t, web)
	id, err := rawCall(h, roomcastv1.BrokerService_Publish_FullMethodName, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	msg := publishBytes(t, "r", 60<<10)
	if err := h.DataBytes(id, msg[:30<<10]); err != nil {
		t.Fatal(err)
	}
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.WaitStream(ctx, id); err != nil {
		t.Fatal(err)
	}
	// The scanner takes the server's ends at its next read.
	for i := uint64(1); i <= 2; i++ {
		if err := h.Probe(i); err != nil {
			t.Fatal(err)
		}
		if _, err := h.WaitProbe(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if got := gaugeValue(t, reg, "roomcast_unfinished_request_bytes"); got != 0 {
		t.Fatalf("roomcast_unfinished_request_bytes = %v after the server ended the stream, want 0", got)
	}
}

// A request to a served path that is no RPC connect-go serves (an
// unsupported content type, which connect-go answers 415) counts as a
// refused call too: past --max-refused-calls within a second its
// connection is closed. A review flooded them at 7.6 s of CPU in 5 s.
func TestWebRequestsOfNoRPCAreRefusedCalls(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv, _ := start(t, server.WithMetrics(reg), server.WithMaxRefusedCalls(20))
	web := startWeb(t, srv)
	ctx := testCtx(t)
	hc := httpClient(t, false)
	for i := 0; counter(t, reg, "roomcast_connections_refusal_closes_total") == 0; i++ {
		if i == 100 {
			t.Fatal("100 requests of no RPC within the second, and the connection is still open")
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, web+roomcastv1connect.BrokerServicePublishProcedure, strings.NewReader("hi"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/plain")
		resp, err := hc.Do(req)
		if err != nil {
			continue // the connection closed under it
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("a text/plain request: %s, want 415", resp.Status)
		}
	}
}
