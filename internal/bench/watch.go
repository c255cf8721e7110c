package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"connectrpc.com/connect"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/gen/roomcast/v1/roomcastv1connect"
)

// The watch variant is roomcast as built, with its subscribers on the web
// listener: each a Watch call of its room over the Connect protocol in
// binary, on h2c connections, through connect-go; its publishers call
// Publish on the gRPC port as the roomcast variant's do. Beside that
// variant it measures what the web path costs the server per delivery and
// per idle subscriber.

// watchTarget is a roomcast server that also serves web clients.
type watchTarget struct {
	*roomcastTarget
	web       net.Listener
	webServed chan error
}

func startWatch(subscribers, conns, streamsPerConn int) (_ *watchTarget, err error) {
	rt, err := startRoomcast(false, subscribers, conns, streamsPerConn, nil, 1)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		rt.close()
		return nil, err
	}
	t := &watchTarget{roomcastTarget: rt, web: lis, webServed: make(chan error, 1)}
	go func() { t.webServed <- rt.nodes[0].ServeWeb(lis) }()
	return t, nil
}

// webAddrs are the web listeners' addresses, by node.
func (t *watchTarget) webAddrs() []string { return []string{t.web.Addr().String()} }

// close shuts the server down, the web listener with it.
func (t *watchTarget) close() {
	t.roomcastTarget.close()
	<-t.webServed
}

// webAddrsOf is tgt's web addresses, nil for a target without them.
func webAddrsOf(tgt target) []string {
	if w, ok := tgt.(interface{ webAddrs() []string }); ok {
		return w.webAddrs()
	}
	return nil
}

// watchDriver is grpcDriver with its subscribers on the web listener.
type watchDriver struct {
	*grpcDriver
	clients    []*connect.Client[roomcastv1.WatchRequest, roomcastv1.WatchResponse] // one per subscriber connection
	transports []*http.Transport
}

func newWatchDriver(w *worker) *watchDriver { return &watchDriver{grpcDriver: newGRPCDriver(w)} }

// connect makes each subscriber connection's h2c client, which connects
// on its first call, and dials the publishers' gRPC connections.
func (d *watchDriver) connect(ctx context.Context) error {
	if len(d.w.spec.WebAddrs) == 0 {
		return errors.New("the watch variant needs a server with a web listener")
	}
	for i := range d.w.spec.Connections {
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		base := "http://" + d.w.spec.WebAddrs[d.w.connNode(i)]
		d.transports = append(d.transports, tr)
		hc := &http.Client{Transport: tr}
		if err := warm(ctx, hc, base); err != nil {
			return err
		}
		d.clients = append(d.clients, connect.NewClient[roomcastv1.WatchRequest, roomcastv1.WatchResponse](
			hc, base+roomcastv1connect.BrokerServiceWatchProcedure, connect.WithCodec(frameCodec{})))
	}
	return d.pubs.connect(ctx)
}

// warm opens hc's connection to base with a request of no RPC, so that the
// connection is counted as connected, not as its first subscriber's, as
// the gRPC variants' are.
func warm(ctx context.Context, hc *http.Client, base string) error {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", base, err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err
}

func (d *watchDriver) subscribe(ctx context.Context) error {
	return subscribeAll(ctx, d.w.subs, d.cancel, d.join)
}

// join opens s's Watch call of its room and starts receiving.
func (d *watchDriver) join(s *subscriber) error {
	stream, err := d.clients[d.w.subConn(s.id)].CallServerStream(d.ctx, connect.NewRequest(&roomcastv1.WatchRequest{
		Rooms: []*roomcastv1.JoinCommand{{Room: s.room.name}},
	}))
	if err != nil {
		return err
	}
	conn, err := stream.Conn()
	if err != nil {
		return err
	}
	f := &wireFrame{room: s.room.name}
	if err := d.greeted(s, conn.Receive, f); err != nil {
		return err
	}
	d.receivers.Go(func() { d.receive(s, conn.Receive, f) })
	return nil
}

func (d *watchDriver) close() {
	d.grpcDriver.close()
	for _, tr := range d.transports {
		tr.CloseIdleConnections()
	}
}

// frameCodec is wireCodec for connect-go: a *wireFrame is read off the
// wire format directly, anything else is protobuf.
type frameCodec struct{}

func (frameCodec) Name() string { return "proto" }

func (frameCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("cannot encode %T", v)
	}
	return proto.Marshal(m)
}

func (frameCodec) Unmarshal(b []byte, v any) error {
	if f, ok := v.(*wireFrame); ok {
		return f.parse(mem.BufferSlice{mem.SliceBuffer(b)})
	}
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("cannot decode into %T", v)
	}
	return proto.Unmarshal(b, m)
}
