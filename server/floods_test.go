package server_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// A stream whose commands the rate limits refuse gets an error reply for
// each at first, as a client that slows down would; one that keeps sending
// regardless, more than the limit refused within a second, is ended with
// RESOURCE_EXHAUSTED, whichever rate refused them, and counted.
func TestAStreamThatKeepsSendingPastTheCommandRateIsEnded(t *testing.T) {
	for _, tc := range []struct {
		name string
		rate server.Option
	}{
		{"per stream", server.WithCommandRate(0.001, 1)},
		{"per credential", server.WithCredentialCommandRate(0.001, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			_, addr := start(t, server.WithMetrics(reg), server.WithCommandRate(0, 0), tc.rate, server.WithMaxRefusedCommands(5))
			s := subscribe(t, testCtx(t), dial(t, addr), "r0") // the burst
			for i := range 5 {
				rep := s.command(joinReq(fmt.Sprint("honest", i), "r", nil))
				if codes.Code(rep.GetError().GetCode()) != codes.ResourceExhausted {
					t.Fatalf("refused command %d: %v, want a RESOURCE_EXHAUSTED reply", i, rep)
				}
			}
			if n := counter(t, reg, "roomcast_command_flood_ends_total"); n != 0 {
				t.Errorf("%v streams ended before the flood, want 0", n)
			}
			for i := range 100 { // past the limit, however slowly the test runs
				if err := s.stream.Send(joinReq(fmt.Sprint("flood", i), "r", nil)); err != nil {
					break // the stream has ended
				}
			}
			if st := s.expectEnd(codes.ResourceExhausted); !strings.Contains(st.Message(), "too many commands past the rate limit") {
				t.Errorf("the stream ended with %q, want it to say why", st.Message())
			}
			if n := counter(t, reg, "roomcast_command_flood_ends_total"); n != 1 {
				t.Errorf("roomcast_command_flood_ends_total is %v, want 1", n)
			}
		})
	}
}

// A connection on which calls keep being refused before they run is
// closed: its calls fail with UNAVAILABLE, and the closure is counted.
// Another client's connection, and its streams, are not touched; nor is a
// client refused fewer times.
func TestAConnectionWhoseCallsKeepBeingRefusedIsClosed(t *testing.T) {
	g := testjwt.Grants(t, ">", ">", ">")
	for _, tc := range []struct {
		name string
		opts []server.Option
		call func(ctx context.Context, c roomcastv1.BrokerServiceClient) error // refused
	}{
		{"unauthenticated", nil, func(ctx context.Context, c roomcastv1.BrokerServiceClient) error {
			_, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r"})
			return err
		}},
		// A unary Publish owing bytes is refused with spread advice, and
		// paused rather than closed once crowded (publishadvice_test.go).
		{"a PublishStream owing bytes of the publish byte rate", []server.Option{server.WithPublishByteRate(0.001, 1)}, func(ctx context.Context, c roomcastv1.BrokerServiceClient) error {
			stream, err := c.PublishStream(bearer(ctx, testjwt.Token(t, "flood", time.Now().Add(time.Hour), g)))
			if err != nil {
				return err
			}
			// The first stream's publish makes the debt, 2 bytes owed for
			// 2000 s; the later streams are refused before it is read.
			if err := stream.Send(&roomcastv1.PublishStreamRequest{Publish: &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Text{Text: "xx"}}}); err != nil && err != io.EOF {
				return err
			}
			resp, err := stream.Recv()
			if err != nil {
				return err
			}
			stream.CloseSend()
			if e := resp.GetError(); e != nil {
				return status.Error(codes.Code(e.GetCode()), e.GetMessage())
			}
			return nil
		}},
		{"owing bytes of the read byte rate", []server.Option{server.WithReadByteRate(0.001, 1)}, func(ctx context.Context, c roomcastv1.BrokerServiceClient) error {
			// The room's epoch makes its answer a few bytes, which the
			// first call owes for 1000 s each.
			_, err := c.History(bearer(ctx, testjwt.Token(t, "flood", time.Now().Add(time.Hour), g)), &roomcastv1.HistoryRequest{Room: "r"})
			return err
		}},
		{"past the streams per credential", []server.Option{server.WithMaxStreamsPerCredential(1)}, func(ctx context.Context, c roomcastv1.BrokerServiceClient) error {
			stream, err := c.Subscribe(bearer(ctx, testjwt.Token(t, "honest", time.Now().Add(time.Hour), g)))
			if err != nil {
				return err
			}
			_, err = stream.Recv()
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			addr := testjwt.StartServer(t, append(tc.opts, server.WithMetrics(reg), server.WithMaxRefusedCalls(20))...)
			ctx := testCtx(t)
			honest := bearer(ctx, testjwt.Token(t, "honest", time.Now().Add(time.Hour), g))
			bystander := subscribe(t, honest, dial(t, addr), "r")

			few := dial(t, addr)
			tc.call(ctx, few) // takes a burst of one, if there is one
			for range 5 {
				if err := tc.call(ctx, few); status.Code(err) == codes.OK || status.Code(err) == codes.Unavailable {
					t.Fatalf("a refused call: %v, want it refused", err)
				}
			}
			flood := dial(t, addr)
			for i := 0; ; i++ {
				err := tc.call(ctx, flood)
				if status.Code(err) == codes.Unavailable {
					break
				}
				if status.Code(err) == codes.OK || i == 2000 {
					t.Fatalf("call %d: %v, want it refused and the connection closed (%v closed)", i, err, counter(t, reg, "roomcast_connections_refusal_closes_total"))
				}
			}
			if n := counter(t, reg, "roomcast_connections_refusal_closes_total"); n != 1 {
				t.Errorf("roomcast_connections_refusal_closes_total is %v, want 1", n)
			}
			if rep := bystander.command(joinReq("j", "r2", nil)); rep.GetError() != nil {
				t.Errorf("the bystander's join: %v", rep.GetError())
			}
			if err := tc.call(ctx, few); status.Code(err) == codes.OK || status.Code(err) == codes.Unavailable {
				t.Errorf("a client refused a few times: %v, want it refused, its connection open", err)
			}
		})
	}
}

// A command past the rate limits is refused by the stream's reader, which
// then reads nothing more of the stream for a pause that doubles with each
// refusal within a second: a flood is read a few times a second instead of
// costing a reply for each of its commands. The hook holds the reader in
// its pause, so each refusal's reply must come before the next command is
// read.
func TestAStreamPastItsCommandRateIsReadAfterAPause(t *testing.T) {
	held := newHeldPauses()
	_, addr := start(t, server.WithCommandRate(0.001, 1), server.WithMaxRefusedCommands(0), held.option())
	t.Cleanup(held.stop) // before the server stops
	ctx := testCtx(t)
	s := subscribe(t, ctx, dial(t, addr), "r0") // the burst
	const flood = 8
	for i := range flood {
		if err := s.stream.Send(joinReq(fmt.Sprint(i), fmt.Sprint("r", i+1), nil)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range flood {
		select {
		case p := <-held.pauses:
			if want := time.Millisecond << i; p.d != want {
				t.Errorf("pause after refusal %d: %v, want %v", i, p.d, want)
			}
		case <-ctx.Done():
			t.Fatalf("the reader did not pause after refusal %d", i)
		}
		resp, err := s.stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if rep := resp.GetReply(); rep.GetId() != fmt.Sprint(i) || codes.Code(rep.GetError().GetCode()) != codes.ResourceExhausted {
			t.Fatalf("response %d while the reader pauses: %v, want command %d refused with RESOURCE_EXHAUSTED", i, resp, i)
		}
		held.release <- struct{}{}
	}
}

// A stream that keeps sending past its rate is refused after each pause
// and keeps the longest pause once it reaches it, past the second its
// refusals began in: counted within each second, its pauses began again at
// a millisecond every second, so that a flood was read and refused about
// ten times a second for as long as it lasted. (It takes about 3 s: the
// pauses are real.)
func TestAFloodingStreamKeepsItsLongestPause(t *testing.T) {
	pauses := make(chan time.Duration, 64)
	_, addr := start(t, server.WithCommandRate(0.001, 1), server.WithMaxRefusedCommands(0),
		server.WithReadPauseHook(func(_ string, d time.Duration) {
			select {
			case pauses <- d:
			default:
			}
		}))
	ctx := testCtx(t)
	s := subscribe(t, ctx, dial(t, addr), "r0") // the burst
	go func() {
		for i := 0; ; i++ { // ends with the stream, when the test does
			if s.stream.Send(joinReq(fmt.Sprint(i), fmt.Sprint("r", i+1), nil)) != nil {
				return
			}
		}
	}()
	go func() {
		for { // the refusals' replies, so that the server's writes never block
			if _, err := s.stream.Recv(); err != nil {
				return
			}
		}
	}()
	const longest = 11 // 1 ms doubled ten times passes a second
	for i := 1; i <= longest+2; i++ {
		select {
		case d := <-pauses:
			if i >= longest && d != time.Second {
				t.Fatalf("pause %d: %v, want the longest, 1s, for as long as the stream floods", i, d)
			}
		case <-ctx.Done():
			t.Fatalf("pause %d: the reader did not pause", i)
		}
	}
}

// Past its first hundred calls refused within a second, a connection whose
// calls the tap refuses is paused after each one, 1 ms doubled for each
// further refusal, so that a client ignoring its refusals is read a hundred
// times a second rather than as fast as it can write.
func TestAConnectionWhoseCallsKeepBeingRefusedIsPaused(t *testing.T) {
	pauses := make(chan time.Duration, 1000)
	addr := testjwt.StartServer(t, server.WithMaxRefusedCalls(0), server.WithTapPauseHook(func(d time.Duration) { pauses <- d }))
	ctx := testCtx(t)
	c := dial(t, addr)
	var first int // refused calls before the first pause
	var seen []time.Duration
	for i := 0; len(seen) < 3; i++ {
		if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r"}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("call %d: %v, want UNAUTHENTICATED", i, err)
		}
		select {
		case d := <-pauses:
			if len(seen) == 0 {
				first = i
			}
			seen = append(seen, d)
		default:
			if i > 5000 {
				t.Fatalf("%d calls refused, no pause", i)
			}
		}
	}
	if first < 100 {
		t.Errorf("paused after %d refusals, want none for the first 100 within a second", first)
	}
	for i, d := range seen {
		if d != time.Millisecond && (i == 0 || d != 2*seen[i-1]) { // a new second starts over
			t.Errorf("pauses %v: want 1 ms, each doubling the last", seen)
		}
	}
}
