package server_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// Refused calls spread over many connections of one address are paused
// past the address's allowance (200 a second), before any connection is
// past its own (100): a loop over 25 connections was otherwise refused
// 2,500 times a second. Another address is not paused for them.
func TestRefusedCallsArePausedPerAddress(t *testing.T) {
	pauses := make(chan time.Duration, 1000)
	reg := prometheus.NewRegistry()
	addr := testjwt.StartServer(t, server.WithMaxRefusedCalls(0), server.WithMetrics(reg), server.WithTapPauseHook(func(d time.Duration) { pauses <- d }))
	ctx := testCtx(t)
	conns := []roomcastv1.BrokerServiceClient{dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.1", addr)}
	refuse := func(c roomcastv1.BrokerServiceClient) {
		t.Helper()
		if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r"}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("%v, want UNAUTHENTICATED", err)
		}
	}
	// Within one second, each connection's refusals are a third of the
	// address's: the first pause comes past 200 of them in all, not 300.
	start := time.Now()
	first := -1
	for i := 0; first < 0 && i < 400; i++ {
		refuse(conns[i%len(conns)])
		select {
		case d := <-pauses:
			first = i + 1
			if d != time.Millisecond {
				t.Errorf("the first pause was %v, want 1 ms", d)
			}
		default:
		}
	}
	if time.Since(start) > time.Second {
		t.Skipf("the refusals took %v, more than the allowances' second", time.Since(start))
	}
	if first != 201 { // the tap pauses before the client hears of its refusal
		t.Fatalf("the first pause came at refusal %d over 3 connections, want the 201st, past the address's 200", first)
	}
	// A refusal past the allowance is answered once its connection's
	// pause is over, and counted by then.
	refuse(conns[0])
	paused := func(kind string) float64 {
		return counterOf(t, reg, "roomcast_refused_call_paused_seconds_total", map[string]string{"kind": kind})
	}
	if got := paused("refused"); got < 0.001 {
		t.Errorf("roomcast_refused_call_paused_seconds_total{kind=refused} is %v, want the pause's 1 ms at least", got)
	}
	if got := paused("crowded"); got != 0 {
		t.Errorf("roomcast_refused_call_paused_seconds_total{kind=crowded} is %v, want 0", got)
	}
	for len(pauses) > 0 {
		<-pauses
	}
	// Another address has its own allowance.
	other := dialFrom(t, "127.0.0.2", addr)
	for range 50 {
		refuse(other)
	}
	select {
	case d := <-pauses:
		t.Fatalf("another address's refused call was paused %v", d)
	default:
	}
}
