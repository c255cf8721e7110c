package server_test

import (
	"bytes"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

const readBytesSays = "more bytes of History and Presence than its rate allows"

// maxAnswer is the largest History or Presence answer.
const maxAnswer = 1 << 20

// A credential that has been sent more bytes of History and Presence than
// its read byte rate allows is refused both, with a retry delay, until it
// owes nothing: from their headers (counted and logged as early refusals),
// on the web handler too. An answer larger than the burst passes while the
// credential owes nothing. Another credential is not refused.
func TestReadBytesAreRateLimitedPerCredential(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv, addr := servertest.Start(t, server.WithAuthenticator(testjwt.Authenticator(t)),
		server.WithMetrics(reg), server.WithReadByteRate(1, 1000))
	web := startWeb(t, srv)
	ctx := testCtx(t)
	c := dial(t, addr)
	g := testjwt.Grants(t, "r", "r", "r")
	tokA := testjwt.Token(t, "a", time.Now().Add(time.Hour), g)
	a, b := bearer(ctx, tokA), bearer(ctx, testjwt.Token(t, "b", time.Now().Add(time.Hour), g))
	big := &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: bytes.Repeat([]byte{1}, 2000)}}
	if _, err := c.Publish(a, big); err != nil {
		t.Fatal(err)
	}
	if _, err := c.History(a, &roomcastv1.HistoryRequest{Room: "r"}); err != nil {
		t.Fatalf("an answer over the burst, owing nothing: %v", err)
	}
	// It owes over 1000 bytes at 1 byte a second.
	_, err := c.History(a, &roomcastv1.HistoryRequest{Room: "r"})
	checkRetryLater(t, "History while owing", err, readBytesSays, 900*time.Second)
	_, err = c.Presence(a, &roomcastv1.PresenceRequest{Room: "r"})
	checkRetryLater(t, "Presence while owing", err, readBytesSays, 900*time.Second)
	for _, m := range []string{roomcastv1.BrokerService_History_FullMethodName, roomcastv1.BrokerService_Presence_FullMethodName} {
		if got := refusedCount(t, reg, m, "read_bytes_owed"); got != 1 {
			t.Errorf("roomcast_requests_refused_total{method=%q,reason=\"read_bytes_owed\"} = %v, want 1", m, got)
		}
	}
	for _, p := range []webProtocol{webProtocols[0], webProtocols[2]} {
		wc := p.client(t, web)
		_, err := wc.History(ctx, withToken(connect.NewRequest(&roomcastv1.HistoryRequest{Room: "r"}), tokA))
		if connect.CodeOf(err) != connect.CodeResourceExhausted {
			t.Errorf("%s: History while owing: %v, want RESOURCE_EXHAUSTED", p.name, err)
		}
	}
	if _, err := c.History(b, &roomcastv1.HistoryRequest{Room: "r"}); err != nil {
		t.Errorf("another credential's History: %v", err)
	}
}

// On the web handler, whose tap is its own (webAuth), the answers are charged too: a
// credential that reads there owes, and is refused over gRPC.
func TestWebReadsAreChargedToTheReadByteRate(t *testing.T) {
	srv, addr := servertest.Start(t, server.WithAuthenticator(testjwt.Authenticator(t)), server.WithReadByteRate(1, 1000))
	web := startWeb(t, srv)
	ctx := testCtx(t)
	tok := testjwt.Token(t, "a", time.Now().Add(time.Hour), testjwt.Grants(t, "r", "r", "r"))
	c := dial(t, addr)
	big := &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: bytes.Repeat([]byte{1}, 2000)}}
	if _, err := c.Publish(bearer(ctx, tok), big); err != nil {
		t.Fatal(err)
	}
	wc := webProtocols[0].client(t, web)
	if _, err := wc.History(ctx, withToken(connect.NewRequest(&roomcastv1.HistoryRequest{Room: "r"}), tok)); err != nil {
		t.Fatalf("the web History owing nothing: %v", err)
	}
	_, err := c.Presence(bearer(ctx, tok), &roomcastv1.PresenceRequest{Room: "r"})
	checkRetryLater(t, "Presence over gRPC after a web History", err, readBytesSays, 900*time.Second)
}

// With serve's defaults, a credential that keeps asking for the largest
// History answers (1 MiB) is refused within a few dozen of them, where the
// read rate alone let 200 through at once and 100 a second after.
func TestDefaultReadByteRateHoldsAFloodOfLargeAnswers(t *testing.T) {
	addr := testjwt.StartServer(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	a := bearer(ctx, testjwt.Token(t, "a", time.Now().Add(time.Hour), testjwt.Grants(t, "r", "r", "r")))
	for range 20 { // 1.2 MB of history: a History answer of 1 MiB
		msg := &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: bytes.Repeat([]byte{1}, 60_000)}}
		if _, err := c.Publish(a, msg); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	size := 0            // of an answer
	for i := range 200 { // the read rate's burst
		h, err := c.History(a, &roomcastv1.HistoryRequest{Room: "r", Limit: 1000})
		if err == nil {
			size = proto.Size(h)
			continue
		}
		if i < server.DefaultReadByteBurst/maxAnswer {
			t.Fatalf("History %d of 1 MiB: %v, want the first %d within the burst", i, err, server.DefaultReadByteBurst/maxAnswer)
		}
		// The burst, what the rate earned while they were sent, and the
		// one charged past it.
		earned := server.DefaultReadByteBurst + server.DefaultReadByteRate*time.Since(start).Seconds()
		if most := int(earned)/size + 1; i > most {
			t.Errorf("refused after %d answers of %d bytes, want at most %d", i, size, most)
		}
		checkRetryLater(t, "History past the read byte rate", err, readBytesSays, 0)
		return
	}
	t.Fatal("200 History answers of 1 MiB each in a row, none refused")
}
