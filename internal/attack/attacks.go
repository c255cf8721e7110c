package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/rawh2"
)

// attack is one row of the table. Its run, in the child process, must
// return once ctx is done (its duration has passed), and summarizes what
// the attacker saw.
type attack struct {
	name      string   // for --attacks
	label     string   // for the table
	about     string   // what it does, for the progress log
	serveArgs []string // serve's flags beyond the defaults
	run       func(ctx context.Context, s childSpec) (string, error)
}

// attacks are every attack, in the table's order.
var attacks = []*attack{
	{name: "header-bomb", label: "(a) header bomb", about: "4 connections, no credential: streams whose HEADERS reference one 4 KB -bin HPACK entry 3,900 times (16 MB of headers each)", run: headerBomb},
	{name: "big-rooms", label: "(b) 1 MiB messages to new rooms", about: "one credential publishes 1 MiB messages, each to a new room, from 8 goroutines (at most 2 GiB)", run: bigRooms},
	{name: "unauth-body", label: "(c) huge unauthenticated Publish", about: "no credential: Publish requests of 1 MB holding 70,000 header-map entries, from 8 goroutines", run: unauthBody},
	{name: "streams", label: "(d) streams from one credential", about: "one credential opens Subscribe streams over 25 connections as fast as it can (at most 20,000)", run: manyStreams},
	{name: "commands", label: "(e) commands flood", about: "one credential, 50 streams each sending join and leave commands as fast as it can", run: commandFlood},
	{name: "reads", label: "(f) History/Presence flood", about: "one credential fills a room with 4 MB of history and 500 members, then floods History and Presence at their largest limits from 32 goroutines", run: readFlood},
	{name: "idle-conns", label: "(g) connections that never authenticate", about: "5,000 HTTP/2 connections that send the preface and never make a call", run: idleConns},
	{name: "idle-redial", label: "(g) idle connections, redialled", about: "HTTP/2 connections that send the preface and never make a call, 5,000 held open, each the server closes dialled again at once, never giving up", run: idleRedial},
	{name: "rapid-reset", label: "(h) HTTP/2 rapid reset", about: "no credential: HEADERS and RST_STREAM pairs as fast as one connection takes them, reconnecting when cut off", run: rapidReset},
	{name: "anon-burst", label: "(i) anonymous publish burst", about: "no credential, one address: small publishes flat out from 32 goroutines on 4 connections",
		serveArgs: []string{"--allow-anonymous", "--anonymous-publish", "anon.>"}, run: anonBurst},
	{name: "pubstream-flood", label: "(j) PublishStream flood", about: "one credential, 8 PublishStreams over 4 connections sending batches of 256 small publishes, past its publish rate, as fast as it can", run: pubstreamFlood},
	{name: "cpu-burn", label: "(k) control: the attacker's CPU alone", about: "no calls: the attacker keeps its core busy, to show what sharing a core with it costs the bystander", run: cpuBurn},
	{name: "announce", label: "(l) announced messages", about: "one credential, 1,000 Subscribe streams over 5 connections, each announcing a 1 MiB message and sending all of it but its last byte, then holding", run: announce},
	{name: "announce-publish", label: "(m) announced publishes", about: "one credential, Publish calls over 5 connections of 200, each announcing a 1 MiB message and sending all of it but its last byte, then holding; each connection the server closes dialled again, never giving up", run: announcePublish},
	{name: "frame-flood", label: "(n) frames that carry nothing", about: "no credential, 5 connections each opening a Publish call and sending padded DATA frames of no data on it, and PRIORITY frames, as fast as the server reads them; each connection the server closes dialled again", run: frameFlood},
	{name: "control-flood", label: "(o) WINDOW_UPDATE, PING and GOAWAY flood", about: "no credential, no call: 5 connections each sending WINDOW_UPDATE, PING and GOAWAY frames as fast as the server reads them; each connection the server closes dialled again", run: controlFlood},
	{name: "window-dribble", label: "(p) windows opened a byte at a time", about: "one credential fills a room with history, then 2 connections each open 10 History calls on it with windows of nothing, and open each by one byte at a time (the connection's by as little), with a PING, for the one-byte DATA frames that answer; each connection dialled again when the server ends it or a call", run: windowDribble},
}

func attackNames() []string {
	names := make([]string, len(attacks))
	for i, a := range attacks {
		names[i] = a.name
	}
	return names
}

// withKey returns ctx with the attacker's credential.
func withKey(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

// rawConn dials an HTTP/2 connection to addr, closed when ctx is done,
// which ends any write blocked on it.
func rawConn(ctx context.Context, addr string) (*rawh2.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	h2, err := rawh2.New(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	// Closed at the attack's end, or forgotten once it closes: a redialling
	// attacker opens tens of thousands, each with its write buffer.
	stop := context.AfterFunc(ctx, func() { h2.Close() })
	go func() {
		<-h2.Done()
		stop()
	}()
	return h2, nil
}

// (a) Every stream's header block decodes to just under grpc-go's default
// limit of 16 MB: the -bin entry is inserted into the HPACK table once per
// connection and referenced by its index, one byte each, 3,900 times.
func headerBomb(ctx context.Context, s childSpec) (string, error) {
	const conns, refs = 4, 3900
	value := base64.RawStdEncoding.EncodeToString(make([]byte, 3000)) // 4,000 characters
	var streams, cut, failed atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for !ended(ctx) {
				h2, err := rawConn(ctx, s.Addr)
				if err != nil { // refused, or closed as it opened: an attacker dials again
					failed.Add(1)
					continue
				}
				var fields []hpack.HeaderField
				for _, f := range rawh2.GRPCHeaders(s.Addr, "/roomcast.v1.BrokerService/Publish") {
					f.Sensitive = true // never indexed: the table keeps the bomb alone
					fields = append(fields, f)
				}
				first := append([]hpack.HeaderField(nil), fields...)
				first = append(first, hpack.HeaderField{Name: "x-bomb-bin", Value: value})
				ref := []byte(strings.Repeat("\xbe", refs)) // indexed field 62: the newest entry of the table
				for i := 0; !ended(ctx); i++ {
					block := fields
					if i == 0 {
						block = first
					}
					b := append(append([]byte(nil), h2.Encode(block)...), ref...)
					if _, err := h2.Open(b, true); err != nil {
						break
					}
					if err := h2.Flush(); err != nil {
						break
					}
					streams.Add(1)
				}
				h2.Close()
				if !ended(ctx) {
					cut.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return fmt.Sprintf("%s streams of 16 MB of headers sent; %s connections closed by the server; %s dials failed", commas(int(streams.Load())), commas(int(cut.Load())), commas(int(failed.Load()))), nil
}

// (b) Rooms are made by their first publish; each holds its message for
// the history TTL. The attack stops early once the server has accepted
// most bytes, not sent them: refused publishes go on until its end.
func bigRooms(ctx context.Context, s childSpec) (string, error) {
	const goroutines, most = 8, 2 << 30
	conns, closeAll, err := dial(s.Addr, 2)
	if err != nil {
		return "", err
	}
	defer closeAll()
	payload := make([]byte, 1<<20-2<<10) // with its envelope, just under --max-message-bytes
	var accepted atomic.Int64            // at most about most: refused publishes go on until the end
	var t tally
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			c := roomcastv1.NewBrokerServiceClient(conns[g%len(conns)])
			for i := 0; !ended(ctx) && accepted.Load() < most; i++ {
				_, err := c.Publish(withKey(ctx, s.Key), &roomcastv1.PublishRequest{
					Room: fmt.Sprintf("big.%d.%d", g, i), Payload: &roomcastv1.PublishRequest_Data{Data: payload},
				})
				if err == nil {
					accepted.Add(int64(len(payload)))
				}
				t.code(ctx, err)
			}
		})
	}
	wg.Wait()
	mb := t.get("OK") * len(payload) >> 20
	return fmt.Sprintf("publishes: %s (%s MiB accepted)", t.String(), commas(mb)), nil
}

// rawCodec sends bytes as they are, so that a request is encoded once.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// (c) grpc-go decodes a unary request before the interceptors see it, so
// the authenticator refuses the call only once the map is built.
func unauthBody(ctx context.Context, s childSpec) (string, error) {
	const goroutines = 8
	req := &roomcastv1.PublishRequest{Room: "unauth", Payload: &roomcastv1.PublishRequest_Text{Text: "x"}, Headers: map[string]string{}}
	for i := range 1_000_000 / 14 { // 14 bytes an entry: tags and lengths, "h000000", "v"
		req.Headers[fmt.Sprintf("h%06d", i)] = "v"
	}
	body, err := proto.Marshal(req)
	if err != nil {
		return "", err
	}
	conns, closeAll, err := dial(s.Addr, 2, grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return "", err
	}
	defer closeAll()
	var t tally
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for !ended(ctx) {
				var reply []byte
				t.code(ctx, conns[g%len(conns)].Invoke(ctx, roomcastv1.BrokerService_Publish_FullMethodName, body, &reply))
			}
		})
	}
	wg.Wait()
	return fmt.Sprintf("%s-entry requests of %s bytes: %s", commas(len(req.Headers)), commas(len(body)), t.String()), nil
}

// (d) Each stream is open once its session event arrives; it stays open
// until the attack ends.
func manyStreams(ctx context.Context, s childSpec) (string, error) {
	const connections, goroutines, most = 25, 64, 20_000
	conns, closeAll, err := dial(s.Addr, connections)
	if err != nil {
		return "", err
	}
	defer closeAll()
	var opened atomic.Int64
	var t tally
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			c := roomcastv1.NewBrokerServiceClient(conns[g%len(conns)])
			for i := g; !ended(ctx) && opened.Load() < most; i += goroutines {
				stream, err := c.Subscribe(withKey(ctx, s.Key))
				if err == nil {
					_, err = stream.Recv()
				}
				if err != nil {
					t.code(ctx, err)
					continue
				}
				opened.Add(1)
			}
		})
	}
	wg.Wait()
	return fmt.Sprintf("%s streams open at the end; refused: %s", commas(int(opened.Load())), t.String()), nil
}

// (e) Joins and leaves alternate, so every command does work. A stream
// the server ends is opened again, as a persistent attacker would, so that
// the attack lasts its duration rather than until the server has ended
// every stream once.
func commandFlood(ctx context.Context, s childSpec) (string, error) {
	const connections, streams = 5, 50
	conns, closeAll, err := dial(s.Addr, connections)
	if err != nil {
		return "", err
	}
	defer closeAll()
	var t tally
	var sent, opened atomic.Int64
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			for !ended(ctx) {
				if floodOneStream(ctx, roomcastv1.NewBrokerServiceClient(conns[i%len(conns)]), s.Key, i, &sent, &t) {
					opened.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return fmt.Sprintf("%s commands sent on %s streams; replies: %s", commas(int(sent.Load())), commas(int(opened.Load())), t.String()), nil
}

// floodOneStream sends join and leave commands on one new stream until it
// ends, and reports whether it opened.
func floodOneStream(ctx context.Context, c roomcastv1.BrokerServiceClient, key string, i int, sent *atomic.Int64, t *tally) bool {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the sender
	stream, err := c.Subscribe(withKey(ctx, key))
	if err != nil {
		t.code(ctx, err)
		return false
	}
	go func() {
		for n := 0; !ended(ctx); n++ {
			room := fmt.Sprintf("cmd.%d.%d", i, n/2%256)
			req := &roomcastv1.SubscribeRequest{Id: fmt.Sprint(n), Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: room}}}
			if n%2 == 1 {
				req.Command = &roomcastv1.SubscribeRequest_Leave{Leave: &roomcastv1.LeaveCommand{Room: room}}
			}
			if stream.Send(req) != nil {
				return
			}
			sent.Add(1)
		}
	}()
	for {
		resp, err := stream.Recv()
		if err != nil {
			if !ended(ctx) {
				t.add("stream ended: "+err.Error(), 1)
			}
			return true
		}
		if rep := resp.GetReply(); rep != nil {
			if e := rep.GetError(); e != nil {
				t.add(fmt.Sprintf("code %d", e.GetCode()), 1)
			} else {
				t.add("OK", 1)
			}
		}
	}
}

// (f) The room's ring holds its newest 1,024 messages or 4 MiB; its
// members join with presence and some info.
func readFlood(ctx context.Context, s childSpec) (string, error) {
	const members, goroutines, room = 500, 32, "reads.room"
	conns, closeAll, err := dial(s.Addr, 4, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return "", err
	}
	defer closeAll()
	kctx := withKey(ctx, s.Key)
	c := roomcastv1.NewBrokerServiceClient(conns[0])
	for range 1000 {
		if _, err := c.Publish(kctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Data{Data: make([]byte, 4000)}}); err != nil {
			return "", fmt.Errorf("filling the room: %w", err)
		}
	}
	info := map[string]string{"name": strings.Repeat("n", 100)}
	for i := range members {
		stream, err := roomcastv1.NewBrokerServiceClient(conns[i%len(conns)]).Subscribe(kctx)
		if err == nil {
			err = stream.Send(&roomcastv1.SubscribeRequest{Id: "j", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: room, Presence: true, Info: info}}})
		}
		if err != nil {
			if ctx.Err() != nil {
				return "ran out of time joining the members", nil
			}
			return "", fmt.Errorf("joining the members: %w", err)
		}
		go func() { // read what the stream is sent, until it ends
			for stream.RecvMsg(new(roomcastv1.SubscribeResponse)) == nil {
			}
		}()
	}
	var history, presence tally
	var bytes atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			c := roomcastv1.NewBrokerServiceClient(conns[g%len(conns)])
			for !ended(ctx) {
				h, err := c.History(kctx, &roomcastv1.HistoryRequest{Room: room, Limit: 1000})
				history.code(ctx, err)
				bytes.Add(int64(proto.Size(h)))
				p, err := c.Presence(kctx, &roomcastv1.PresenceRequest{Room: room, Limit: 10_000})
				presence.code(ctx, err)
				bytes.Add(int64(proto.Size(p)))
			}
		})
	}
	wg.Wait()
	return fmt.Sprintf("History: %s; Presence: %s; %s MiB read", history.String(), presence.String(), commas(int(bytes.Load()>>20))), nil
}

// (g) The connections send the client preface and SETTINGS, then nothing.
func idleConns(ctx context.Context, s childSpec) (string, error) {
	const most, goroutines = 5000, 16
	var opened, failed, closed atomic.Int64
	var wg sync.WaitGroup
	newcomer := make(chan string, 1)
	go func() { newcomer <- newcomers(ctx, s.Addr) }()
	for range goroutines {
		wg.Go(func() {
			for !ended(ctx) && opened.Add(1) <= most {
				h2, err := rawConn(ctx, s.Addr)
				if err != nil {
					opened.Add(-1)
					if failed.Add(1) > 100 {
						return
					}
					continue
				}
				go func() {
					<-h2.Done() // the server closed it, or the attack ended
					if !ended(ctx) {
						closed.Add(1)
					}
				}()
			}
		})
	}
	wg.Wait()
	<-ctx.Done()
	return fmt.Sprintf("%s connections opened; %d closed by the server; %d dials failed; %s", commas(int(min(opened.Load(), most))), closed.Load(), failed.Load(), <-newcomer), nil
}

// (g), redialled: an attacker that is refused does not give up, as
// idleConns does after 100 failed dials; it keeps 5,000 connections open
// and dials again, at once, for each the server closes or refuses.
func idleRedial(ctx context.Context, s childSpec) (string, error) {
	const most, goroutines = 5000, 16
	slots := make(chan struct{}, most) // a value per connection open or being dialled
	var dials, failed, closed, peak atomic.Int64
	var wg sync.WaitGroup
	newcomer := make(chan string, 1)
	go func() { newcomer <- newcomers(ctx, s.Addr) }()
	for range goroutines {
		wg.Go(func() {
			for {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				dials.Add(1)
				h2, err := rawConn(ctx, s.Addr)
				if err != nil {
					failed.Add(1)
					<-slots
					continue
				}
				if n := int64(len(slots)); n > peak.Load() {
					peak.Store(n) // roughly: dials under way count too
				}
				go func() {
					<-h2.Done() // the server closed it, or the attack ended
					if !ended(ctx) {
						closed.Add(1)
					}
					<-slots
				}()
			}
		})
	}
	wg.Wait()
	return fmt.Sprintf("%s dials; about %s connections open at most; %s closed by the server; %s dials failed; %s",
		commas(int(dials.Load())), commas(int(peak.Load())), commas(int(closed.Load())), commas(int(failed.Load())), <-newcomer), nil
}

// (h) One connection at a time, as the issue measured; a connection the
// server closes is replaced at once.
func rapidReset(ctx context.Context, s childSpec) (string, error) {
	var pairs, conns, goAways, failed int
	start := time.Now()
	for !ended(ctx) {
		h2, err := rawConn(ctx, s.Addr)
		if err != nil { // refused, or closed as it opened: an attacker dials again
			failed++
			continue
		}
		conns++
		for !ended(ctx) {
			n, err := h2.Pairs(s.Addr, "/roomcast.v1.BrokerService/Publish", 1000)
			pairs += n
			if err != nil {
				break
			}
		}
		select { // what the server sent before closing, read before closing our side
		case <-h2.Done():
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
		h2.Close()
		if end, err := h2.Wait(context.Background()); err == nil && end.GoAway != nil {
			goAways++
		}
	}
	secs := time.Since(start).Seconds()
	return fmt.Sprintf("%s pairs written (%s a second) on %s connections; %s closed by the server with GOAWAY; %s dials failed", commas(pairs), commas(int(float64(pairs)/secs)), commas(conns), commas(goAways), commas(failed)), nil
}

// (i) Without a credential every caller from one address shares the
// anonymous publish limits, whatever they are.
func anonBurst(ctx context.Context, s childSpec) (string, error) {
	const connections, goroutines = 4, 32
	conns, closeAll, err := dial(s.Addr, connections)
	if err != nil {
		return "", err
	}
	defer closeAll()
	var t tally
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			c := roomcastv1.NewBrokerServiceClient(conns[g%len(conns)])
			for !ended(ctx) {
				_, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: fmt.Sprintf("anon.%d", g), Payload: &roomcastv1.PublishRequest_Text{Text: "x"}})
				t.code(ctx, err)
			}
		})
	}
	wg.Wait()
	return "publishes: " + t.String(), nil
}
