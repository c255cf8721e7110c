package server_test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/rawh2"
	"github.com/roomcast/roomcast/server"
)

// A client that sets its stream windows to nothing and opens them a byte
// at a time has the server write a DATA frame of one byte for each
// WINDOW_UPDATE. Each such frame would earn the connection more control
// frames than the update spent, and the rounds would go on unpaced (a
// review made 548,000 in 5 s, 3.7 s of the server's CPU). An update of
// less than a kilobyte is always a request frame: the rounds, and the
// PING sent with each, are read at the request frame rate.
func TestWindowsOpenedAByteAtATimeArePaced(t *testing.T) {
	const rate, rounds = 20, 40
	reg := prometheus.NewRegistry()
	_, addr := start(t, server.WithMetrics(reg), server.WithRequestFrameRate(rate))
	ctx := within(t, 30*time.Second)
	pub := dial(t, addr)
	for range 4 {
		if _, err := pub.Publish(ctx, &roomcastv1.PublishRequest{Room: "dribble", Payload: &roomcastv1.PublishRequest_Data{Data: make([]byte, 1<<10)}}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	context.AfterFunc(ctx, func() { conn.Close() })
	bw := bufio.NewWriter(conn)
	fr := http2.NewFramer(bw, bufio.NewReader(conn))
	bw.WriteString(http2.ClientPreface)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range rawh2.GRPCHeaders(addr, roomcastv1.BrokerService_History_FullMethodName) {
		enc.WriteField(f)
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true})
	req, _ := proto.Marshal(&roomcastv1.HistoryRequest{Room: "dribble"})
	fr.WriteData(1, true, append([]byte{0, 0, 0, 0, byte(len(req))}, req...))
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for r := range rounds {
		fr.WriteWindowUpdate(1, 1)
		fr.WritePing(false, [8]byte{1}) // one a round: grpc-go strikes a second before the DATA
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		for got := false; !got; {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("round %d: %v", r, err)
			}
			switch f := f.(type) {
			case *http2.DataFrame:
				if len(f.Data()) != 1 {
					t.Fatalf("round %d: a DATA frame of %d bytes, want 1", r, len(f.Data()))
				}
				got = true
			case *http2.SettingsFrame:
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			case *http2.GoAwayFrame:
				t.Fatalf("round %d: GOAWAY %v %q", r, f.ErrCode, f.DebugData())
			}
		}
	}
	// Past the burst, at the rate: each round's update is counted, at least.
	took := time.Since(start)
	least := time.Duration(rounds-rate) * time.Second / rate
	if w := counter(t, reg, "roomcast_request_frames_paced_seconds_total"); took < least || w <= 0 {
		t.Fatalf("%d rounds in %v, with %v s counted paced; want at least %v, counted", rounds, took, w, least)
	}
}
