package server_test

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// checkRetryLater fails t unless err is RESOURCE_EXHAUSTED saying msg, with
// a retry delay of at least least.
func checkRetryLater(t *testing.T, what string, err error, msg string, least time.Duration) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), msg) {
		t.Fatalf("%s: %v, want RESOURCE_EXHAUSTED saying %q", what, err, msg)
	}
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok && r.GetRetryDelay().AsDuration() >= least {
			return
		}
	}
	t.Errorf("%s: details %v, want a RetryInfo of at least %v", what, st.Details(), least)
}

// A Publish past its credential's publish rate is refused from its headers
// (no handler decodes it), with a retry delay, and counted and logged as an
// early refusal; on a server without credentials the credential is the
// client's address.
func TestPublishPastItsRateIsRefusedInTheTap(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs logBuffer
	var handled atomic.Int32
	_, addr := start(t, server.WithMetrics(reg), logTo(&logs), server.WithPublishRate(0.001, 1),
		server.WithPublishHook(func(*roomcastv1.PublishRequest) { handled.Add(1) }))
	ctx := testCtx(t)
	c := dial(t, addr)
	publish := roomcastv1.BrokerService_Publish_FullMethodName
	req := &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Text{Text: "x"}}
	if _, err := c.Publish(ctx, req); err != nil {
		t.Fatalf("the publish within the burst: %v", err)
	}
	_, err := c.Publish(ctx, req)
	checkRetryLater(t, "a publish past the rate", err, "publish rate limit exceeded", 900*time.Second)
	if n := handled.Load(); n != 1 {
		t.Errorf("%d Publish handlers ran, want 1: the refused call must not be decoded", n)
	}
	if got := refusedCount(t, reg, publish, "publish_rate"); got != 1 {
		t.Errorf("roomcast_requests_refused_total{reason=\"publish_rate\"} = %v, want 1", got)
	}
	if got := logs.lines(refusedLine(publish, "publish_rate")); len(got) != 1 {
		t.Errorf("the publish past its rate: logged %d lines, want 1", len(got))
	}
}

// History and Presence calls past their credential's read rate, which they
// share, are refused from their headers with a retry delay; another
// credential's calls are not.
func TestReadsPastTheirRateAreRefusedInTheTap(t *testing.T) {
	reg := prometheus.NewRegistry()
	addr := testjwt.StartServer(t, server.WithMetrics(reg), server.WithReadRate(0.001, 1))
	ctx := testCtx(t)
	c := dial(t, addr)
	g := testjwt.Grants(t, "r", "r", "r")
	a, b := bearer(ctx, testjwt.Token(t, "a", time.Now().Add(time.Hour), g)), bearer(ctx, testjwt.Token(t, "b", time.Now().Add(time.Hour), g))
	if _, err := c.Presence(a, &roomcastv1.PresenceRequest{Room: "r"}); err != nil {
		t.Fatalf("the read within the burst: %v", err)
	}
	_, err := c.History(a, &roomcastv1.HistoryRequest{Room: "r"})
	checkRetryLater(t, "History past the read rate", err, "History and Presence rate limit exceeded", 900*time.Second)
	_, err = c.Presence(a, &roomcastv1.PresenceRequest{Room: "r"})
	checkRetryLater(t, "Presence past the read rate", err, "History and Presence rate limit exceeded", 900*time.Second)
	for _, m := range []string{roomcastv1.BrokerService_History_FullMethodName, roomcastv1.BrokerService_Presence_FullMethodName} {
		if got := refusedCount(t, reg, m, "read_rate"); got != 1 {
			t.Errorf("roomcast_requests_refused_total{method=%q,reason=\"read_rate\"} = %v, want 1", m, got)
		}
	}
	if _, err := c.History(b, &roomcastv1.HistoryRequest{Room: "r"}); err != nil {
		t.Errorf("another credential's History: %v", err)
	}
}

// Of many Publish calls in flight at once, only those within the burst
// reach a handler: the tap takes each call's token, so the calls past the
// rate are all refused there, however many found the bucket not yet
// empty.
func TestConcurrentPublishesPastTheRateReachNoHandler(t *testing.T) {
	const burst, calls = 5, 64
	var handled atomic.Int32
	_, addr := start(t, server.WithPublishRate(0.001, burst),
		server.WithPublishHook(func(*roomcastv1.PublishRequest) { handled.Add(1) }))
	ctx := testCtx(t)
	c := dial(t, addr)
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			_, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Text{Text: "x"}})
			switch status.Code(err) {
			case codes.OK:
				ok.Add(1)
			case codes.ResourceExhausted:
				refused.Add(1)
			default:
				t.Errorf("a publish: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != burst || refused.Load() != calls-burst {
		t.Errorf("%d publishes accepted and %d refused, want %d and %d", ok.Load(), refused.Load(), burst, calls-burst)
	}
	if n := handled.Load(); n != burst {
		t.Errorf("%d Publish handlers ran, want %d: a publish past the rate must not reach one", n, burst)
	}
}

// Calls past the rates that do not wait out their advice, fewer than
// the credential's allowance of them within a second (for a publish rate
// of 0.001 a second, 100: see crowdedAllowance; for the read rate,
// freeCredentialCrowdedRefusals, so 149 History calls pass), do not pause
// the connection, although
// from the second on each is crowded (at 0.001 a second, the first refusal
// is told the next token, 1000 s off, which is also the longest advice);
// nor do they count as its refused calls, 100 of which would pause it. See
// also taprates_pause_test.go.
func TestFewCallsPastTheRatesDoNotPauseTheConnection(t *testing.T) {
	var pauses atomic.Int32
	_, addr := start(t, server.WithPublishRate(0.001, 1), server.WithReadRate(0.001, 1),
		server.WithTapPauseHook(func(time.Duration) { pauses.Add(1) }))
	ctx := testCtx(t)
	c := dial(t, addr)
	req := &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Text{Text: "x"}}
	if _, err := c.Publish(ctx, req); err != nil {
		t.Fatalf("the publish within the burst: %v", err)
	}
	for i := range 99 { // the first is not crowded: 98 crowded, within the publish rate's 100
		if _, err := c.Publish(ctx, req); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("publish %d past the rate: %v, want RESOURCE_EXHAUSTED", i, err)
		}
	}
	for i := range 150 { // past the first, crowded: more than the publish rate's allowance
		if _, err := c.History(ctx, &roomcastv1.HistoryRequest{Room: "r"}); i > 0 && status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("History %d past the rate: %v, want RESOURCE_EXHAUSTED", i, err)
		}
	}
	if n := pauses.Load(); n != 0 {
		t.Errorf("the connection was paused %d times for 249 calls past the rates, want none", n)
	}
}
