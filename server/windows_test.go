package server_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"golang.org/x/net/http2"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/rawh2"
	"github.com/roomcast/roomcast/server"
)

// http2Window is HTTP/2's initial window, which a server's SETTINGS and
// WINDOW_UPDATEs change.
const http2Window = 65_535

// rawCommands are n Subscribe join commands as gRPC messages, one after
// another.
func rawCommands(t testing.TB, n int) []byte {
	t.Helper()
	var b []byte
	for i := range n {
		msg, err := proto.Marshal(joinReq(fmt.Sprint(i), fmt.Sprint("r", i), nil))
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, 0)
		b = binary.BigEndian.AppendUint32(b, uint32(len(msg)))
		b = append(b, msg...)
	}
	return b
}

// probe answers the server's pings, sends Probe n and returns what the
// server had said about flow control once it had read everything before it.
func probe(t testing.TB, ctx context.Context, c *rawh2.Conn, n uint64) rawh2.Flow {
	t.Helper()
	err := c.AnswerPings()
	if err == nil {
		err = c.Probe(n)
	}
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.WaitProbe(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestTheServerAnnouncesItsReceiveWindows(t *testing.T) {
	for _, tc := range []struct {
		name         string
		opts         []server.Option
		stream, conn int // 0: grpc-go's dynamic windows
	}{
		{"default", nil, server.DefaultStreamWindow, server.DefaultConnWindow},
		{"set", []server.Option{server.WithReceiveWindows(1<<20, 8<<20)}, 1 << 20, 8 << 20},
		{"dynamic", []server.Option{server.WithReceiveWindows(0, 1<<20)}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := start(t, tc.opts...)
			ctx := testCtx(t)
			c := dialRaw(t, addr)
			id, err := rawCall(c, roomcastv1.BrokerService_Subscribe_FullMethodName, nil, false)
			if err == nil { // data, which grpc-go's bandwidth estimation answers with a PING
				err = c.Data(id, rawCommands(t, 1)[5:], false)
			}
			if err != nil {
				t.Fatal(err)
			}
			f := probe(t, ctx, c, 1)
			got, set := f.Settings[http2.SettingInitialWindowSize]
			if tc.stream == 0 {
				if set || f.Pings == 0 {
					t.Fatalf("dynamic windows: SETTINGS_INITIAL_WINDOW_SIZE %d (set %v), %d PINGs; want no setting and the estimation's PING", got, set, f.Pings)
				}
				return
			}
			if !set || int(got) != tc.stream {
				t.Errorf("SETTINGS_INITIAL_WINDOW_SIZE %d (set %v), want %d", got, set, tc.stream)
			}
			if inc := f.Increments[0]; inc != int64(tc.conn-http2Window) {
				t.Errorf("connection window update %d, want %d (a window of %d)", inc, tc.conn-http2Window, tc.conn)
			}
			if f.Pings != 0 {
				t.Errorf("the server sent %d PINGs: fixed windows need no bandwidth estimation", f.Pings)
			}
		})
	}
}

// TestAPausedStreamIsHeldToItsWindow floods commands on Subscribe streams
// whose readers have paused after a refused command, as fast as HTTP/2 flow
// control lets it, answering the server's PINGs as a gRPC client does: the
// server lets each stream send no more than its window, where grpc-go's
// dynamic windows grew to megabytes (issue #13, attack (e)).
func TestAPausedStreamIsHeldToItsWindow(t *testing.T) {
	const streams = 4
	paused, done := make(chan string, streams), make(chan struct{})
	_, addr := start(t, server.WithCommandRate(0.001, 1), server.WithMaxRefusedCommands(0),
		server.WithReadPauseHook(func(id string, _ time.Duration) {
			select {
			case paused <- id:
			case <-done:
				return
			}
			<-done // the reader reads no more until the test ends
		}))
	t.Cleanup(func() { close(done) }) // before the server stops
	ctx := testCtx(t)
	c := dialRaw(t, addr)
	ids := make([]uint32, streams)
	for i := range ids {
		id, err := rawCall(c, roomcastv1.BrokerService_Subscribe_FullMethodName, nil, false)
		if err == nil { // the burst's command, then one refused
			err = c.DataBytes(id, rawCommands(t, 2))
		}
		if err == nil {
			err = c.Flush()
		}
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	for range streams {
		select {
		case <-paused:
		case <-ctx.Done():
			t.Fatal("the readers did not pause")
		}
	}

	flood := rawCommands(t, 50_000) // more than the window
	setup := len(rawCommands(t, 2))
	sent := make(map[uint32]int) // the setup commands count against the window too
	for _, id := range ids {
		sent[id] = setup
	}
	total := streams * setup
	for round := uint64(1); ; round++ {
		// A health check first: grpc-go's server takes a client's PINGs
		// for keepalive abuse unless it has sent something since the last.
		id, err := rawCall(c, healthpb.Health_Check_FullMethodName, nil, false)
		if err == nil {
			err = rawRequest(c, id, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		total += 5 // its request
		if end, err := c.WaitStream(ctx, id); err != nil || end.Status != "0" {
			t.Fatalf("health check: %+v, %v", end, err)
		}
		f := probe(t, ctx, c, round)
		window := int64(http2Window)
		if w, ok := f.Settings[http2.SettingInitialWindowSize]; ok {
			window = int64(w)
		}
		connCredit := http2Window + f.Increments[0] - int64(total)
		progressed := false
		for _, id := range ids {
			n := int(min(window+f.Increments[id]-int64(sent[id]), connCredit, int64(len(flood)-sent[id]+setup)))
			if n <= 0 {
				continue
			}
			from := sent[id] - setup
			if err := c.DataBytes(id, flood[from:from+n]); err != nil {
				t.Fatal(err)
			}
			sent[id] += n
			total += n
			connCredit -= int64(n)
			progressed = true
			if sent[id] > server.DefaultStreamWindow {
				t.Fatalf("stream %d was let send %d bytes of commands while its reader was paused (round %d, window %d, %d granted since), more than the window %d",
					id, sent[id], round, window, f.Increments[id], server.DefaultStreamWindow)
			}
		}
		if !progressed {
			t.Logf("after %d rounds, sent %v bytes on streams %v", round, sent, ids)
			for _, id := range ids { // a stream reset for a flow-control error would measure nothing
				if end, ok := c.Ended(id); ok {
					t.Errorf("stream %d ended while its reader was paused: %+v", id, end)
				}
			}
			return
		}
	}
}
