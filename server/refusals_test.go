package server_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// refusedCount is roomcast_requests_refused_total of method and reason in
// reg, 0 if it has none.
func refusedCount(t testing.TB, reg *prometheus.Registry, method, reason string) float64 {
	t.Helper()
	return counterOf(t, reg, "roomcast_requests_refused_total", map[string]string{"method": method, "reason": reason})
}

// counterOf is the value in reg of the counter name whose labels include
// every one of labels, 0 if it has none.
func counterOf(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			matched := 0
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
					matched++
				}
			}
			if matched == len(labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// refusedLine matches the refusal log's line of a request of method refused
// for reason, with the client's address.
func refusedLine(method, reason string) *regexp.Regexp {
	return regexp.MustCompile(`level=WARN msg="request refused" peer=127\.0\.0\.1:\d+ rpc=` + regexp.QuoteMeta(method) + ` reason=` + reason + ` err=`)
}

// Requests refused before they are decoded (over their RPC's size limit,
// over a map's entry limit, undecodable) are refused before any interceptor
// runs for a unary call; each is counted by method and reason and logged
// with the client's address all the same, on unary calls and streams.
func TestUndecodedRefusalsAreCountedAndLogged(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs logBuffer
	_, addr := start(t, server.WithMetrics(reg), logTo(&logs), server.WithMaxMessageBytes(1024))
	ctx := testCtx(t)
	conn := servertest.Dial(t, addr)
	c := roomcastv1.NewBrokerServiceClient(conn)
	publish := roomcastv1.BrokerService_Publish_FullMethodName
	subscribeMethod := roomcastv1.BrokerService_Subscribe_FullMethodName

	headers := map[string]string{}
	for i := range 65 {
		headers["h"+strconv.Itoa(i)] = "v"
	}
	if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r", Headers: headers}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("65 headers: %v, want INVALID_ARGUMENT", err)
	}
	if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: make([]byte, 8<<10)}}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("8 KiB over a 1 KiB limit: %v, want RESOURCE_EXHAUSTED", err)
	}
	raw := []byte{0x0a, 0x04, 'c', 'a', 'f', 0xff} // PublishRequest{room: "caf\xff"}
	if err := conn.Invoke(ctx, publish, raw, new([]byte), grpc.ForceCodecV2(rawCodec{})); status.Code(err) != codes.Internal {
		t.Errorf("invalid UTF-8: %v, want INTERNAL", err)
	}
	sub := subscribe(t, ctx, c)
	if err := sub.stream.Send(infoJoin("big", "r", map[string]string{"k": strings.Repeat("v", 20<<10)})); err != nil {
		t.Fatal(err)
	}
	sub.expectEnd(codes.ResourceExhausted)

	for _, want := range []struct{ method, reason string }{
		{publish, "too_many_entries"},
		{publish, "too_large"},
		{publish, "malformed"},
		{subscribeMethod, "too_large"},
	} {
		if got := refusedCount(t, reg, want.method, want.reason); got != 1 {
			t.Errorf("roomcast_requests_refused_total{method=%q,reason=%q} = %v, want 1", want.method, want.reason, got)
		}
		if got := logs.lines(refusedLine(want.method, want.reason)); len(got) != 1 {
			t.Errorf("%s refused for %s: logged %d lines, want 1", want.method, want.reason, len(got))
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", strings.Join(logs.lines(regexp.MustCompile(`.`)), ""))
	}
}

// Calls refused in the tap, before their request is read, are counted by
// method and reason; a refusal by a limit is logged with the client's
// address (a refused credential is, as before, by the authentication
// line). A method the server does not serve is counted as "other", so that
// a client cannot make up label values.
func TestTapRefusalsAreCountedAndLogged(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs logBuffer
	addr := testjwt.StartServer(t, server.WithMetrics(reg), logTo(&logs), server.WithMaxStreamsPerCredential(1))
	ctx := testCtx(t)
	conn := servertest.Dial(t, addr)
	c := roomcastv1.NewBrokerServiceClient(conn)
	a := bearer(ctx, testjwt.Token(t, "a", time.Now().Add(time.Hour), testjwt.Grants(t, "", ">", "")))
	subscribeMethod := roomcastv1.BrokerService_Subscribe_FullMethodName

	subscribe(t, a, c)
	second, err := c.Subscribe(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := second.Recv(); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a second stream of one allowed: %v, want RESOURCE_EXHAUSTED", err)
	}
	if _, err := c.Publish(bearer(ctx, "not.a.token"), &roomcastv1.PublishRequest{Room: "r"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a bad token: %v, want UNAUTHENTICATED", err)
	}
	if err := conn.Invoke(bearer(ctx, "not.a.token"), "/made.Up/Method"+strings.Repeat("x", 100), []byte{}, new([]byte), grpc.ForceCodecV2(rawCodec{})); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a made-up method with a bad token: %v, want UNAUTHENTICATED", err)
	}

	for _, want := range []struct{ method, reason string }{
		{subscribeMethod, "stream_limit"},
		{roomcastv1.BrokerService_Publish_FullMethodName, "unauthenticated"},
		{"other", "unauthenticated"},
	} {
		if got := refusedCount(t, reg, want.method, want.reason); got != 1 {
			t.Errorf("roomcast_requests_refused_total{method=%q,reason=%q} = %v, want 1", want.method, want.reason, got)
		}
	}
	if got := logs.lines(refusedLine(subscribeMethod, "stream_limit")); len(got) != 1 {
		t.Errorf("the stream refused for its credential's limit: logged %d lines, want 1", len(got))
	}
}

// On a server without credentials the tap applies the limits of the
// client's address: a publish refused for the bytes it owes is counted and
// logged as an authenticated caller's would be.
func TestAnonymousTapRefusalsAreCountedAndLogged(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs logBuffer
	_, addr := start(t, server.WithMetrics(reg), logTo(&logs), server.WithPublishByteRate(1, 1000))
	ctx := testCtx(t)
	c := dial(t, addr)
	publish := roomcastv1.BrokerService_Publish_FullMethodName
	big := &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: make([]byte, 2000)}}
	if _, err := c.Publish(ctx, big); err != nil {
		t.Fatalf("a message over the burst, owing nothing: %v", err)
	}
	if _, err := c.Publish(ctx, big); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a publish while owing bytes: %v, want RESOURCE_EXHAUSTED", err)
	}
	if got := refusedCount(t, reg, publish, "publish_bytes_owed"); got != 1 {
		t.Errorf("roomcast_requests_refused_total{reason=\"publish_bytes_owed\"} = %v, want 1", got)
	}
	if got := logs.lines(refusedLine(publish, "publish_bytes_owed")); len(got) != 1 {
		t.Errorf("the publish refused for the bytes it owes: logged %d lines, want 1", len(got))
	}
}

// A connection closed for making no authenticated call within the auth
// timeout is logged with the client's address, as well as counted.
func TestAuthTimeoutsAreLoggedWithThePeer(t *testing.T) {
	var logs logBuffer
	addr := testjwt.StartServer(t, server.WithAuthTimeout(100*time.Millisecond), logTo(&logs))
	silent := dialRaw(t, addr)
	if closed, _ := closedBy(within(t, 10*time.Second), silent); !closed {
		t.Fatal("the silent connection is open after the auth timeout")
	}
	line := regexp.MustCompile(`level=WARN msg="closed a connection that made no authenticated call within the auth timeout \(--auth-timeout\)" peer=` + regexp.QuoteMeta(silent.LocalAddr().String()) + ` closed_so_far=1`)
	if got := logs.lines(line); len(got) != 1 {
		t.Errorf("the connection closed by the auth timeout: logged %d lines, want 1", len(got))
	}
}
