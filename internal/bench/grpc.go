package bench

import (
	"context"

	"connectrpc.com/connect"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Timeouts of the worker's own steps; the parent gives up on it later.
const (
	connectTimeout   = 30 * time.Second
	subscribeTimeout = 60 * time.Second // and joinTime per subscriber
	publishTimeout   = 30 * time.Second
)

// joinTime is how long joining may take per subscriber, beyond
// subscribeTimeout: 100,000 joins on a busy machine take minutes.
const joinTime = 2 * time.Millisecond

// joinTimeout is how long the worker gives n subscribers to join.
func joinTimeout(n int) time.Duration { return subscribeTimeout + time.Duration(n)*joinTime }

// subscribeParallel is how many subscribers open their streams at once.
const subscribeParallel = 32

// grpcDriver runs VariantRawDecode's subscribers on the generated stubs,
// with no client library in between, decoding responses with wireCodec,
// which reads only what the checks need. Its publishers are the client
// package's, as the other roomcast variants'.
type grpcDriver struct {
	w     *worker
	pubs  clientPublishers
	conns []*grpc.ClientConn // the subscribers'

	ctx       context.Context // the streams'; cancelled by close
	cancel    context.CancelFunc
	receivers sync.WaitGroup
	closing   atomic.Bool
	closeOnce sync.Once
}

func newGRPCDriver(w *worker) *grpcDriver {
	ctx, cancel := context.WithCancel(context.Background())
	return &grpcDriver{w: w, pubs: clientPublishers{w: w}, ctx: ctx, cancel: cancel}
}

func (d *grpcDriver) dial(ctx context.Context, addr string) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(newWireCodec())),
	}
	if n := d.w.spec.StreamWindow; n > 0 {
		opts = append(opts, grpc.WithInitialWindowSize(int32(n)), grpc.WithInitialConnWindowSize(int32(16*n)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	conn.Connect()
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			conn.Close()
			return nil, fmt.Errorf("connecting to %s: still %v: %w", addr, s, ctx.Err())
		}
	}
	return conn, nil
}

// connect opens the subscribers' connections, spread over the nodes in
// turn, and each publisher's, to its node.
func (d *grpcDriver) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	for i := range d.w.spec.Connections {
		conn, err := d.dial(ctx, d.w.spec.Addrs[d.w.connNode(i)])
		if err != nil {
			return err
		}
		d.conns = append(d.conns, conn)
	}
	return d.pubs.connect(ctx)
}

func (d *grpcDriver) subscribe(ctx context.Context) error {
	return subscribeAll(ctx, d.w.subs, d.cancel, d.join)
}

// join opens s's stream, joins its room and starts receiving.
func (d *grpcDriver) join(s *subscriber) error {
	client := roomcastv1.NewBrokerServiceClient(d.conns[d.w.subConn(s.id)])
	stream, err := client.Subscribe(d.ctx)
	if err != nil {
		return err
	}
	f := &wireFrame{room: s.room.name}
	join := &roomcastv1.SubscribeRequest{Id: "join", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: s.room.name}}}
	if err := d.greeted(s, func(m any) error {
		if err := stream.RecvMsg(m); err != nil {
			return err
		}
		if f.other.GetSession() != nil { // the join goes once the stream has greeted
			return stream.Send(join)
		}
		return nil
	}, f); err != nil {
		return err
	}
	d.receivers.Go(func() { d.receive(s, stream.RecvMsg, f) })
	return nil
}

// greeted reads, with recv into f, the session event and the reply to s's
// join, which sets where s starts.
func (d *grpcDriver) greeted(s *subscriber, recv func(any) error, f *wireFrame) error {
	if err := recv(f); err != nil {
		return err
	}
	if f.other.GetSession() == nil {
		return errors.New("the stream did not start with a session event")
	}
	if err := recv(f); err != nil {
		return err
	}
	rep := f.other.GetReply()
	if rep == nil {
		return errors.New("the join's reply did not come next")
	}
	if e := rep.GetError(); e != nil {
		return fmt.Errorf("join refused: %s", e.GetMessage())
	}
	s.last = rep.GetJoin().GetOffset()
	return nil
}

// receive takes s's frames with recv until its stream ends.
func (d *grpcDriver) receive(s *subscriber, recv func(any) error, f *wireFrame) {
	for {
		if err := recv(f); err != nil {
			switch {
			case d.closing.Load():
			case status.Code(err) == codes.ResourceExhausted, connect.CodeOf(err) == connect.CodeResourceExhausted:
				d.w.fail("subscriber %d (%s): cut off as a slow consumer: %v", s.id, s.room.name, err)
			default:
				d.w.fail("subscriber %d (%s): stream ended: %v", s.id, s.room.name, err)
			}
			return
		}
		if len(f.msgs) > 0 {
			d.w.accept(s, f.msgs, true, d.w.now())
			s.frames.Add(1)
		}
	}
}

func (d *grpcDriver) publisher(p int) (publishFunc, int) { return d.pubs.publisher(p) }

func (d *grpcDriver) close() {
	d.closeOnce.Do(func() {
		d.closing.Store(true)
		d.cancel()
		d.receivers.Wait()
		for _, c := range d.conns {
			c.Close()
		}
		d.pubs.close()
	})
}

// Field numbers the wire decoder reads, from the generated descriptors.
var (
	respBatch     = (&roomcastv1.SubscribeResponse{}).ProtoReflect().Descriptor().Fields().ByName("batch").Number()
	batchMessages = (&roomcastv1.MessageBatch{}).ProtoReflect().Descriptor().Fields().ByName("messages").Number()
	msgFields     = (&roomcastv1.Message{}).ProtoReflect().Descriptor().Fields()
	msgRoom       = msgFields.ByName("room").Number()
	msgOffset     = msgFields.ByName("offset").Number()
	msgData       = msgFields.ByName("data").Number()
)

// wireCodec is the proto codec, except that it decodes a *wireFrame by
// reading the wire format directly: for a batch, only each message's room,
// offset and payload header, with nothing allocated per message.
type wireCodec struct{ proto encoding.CodecV2 }

func newWireCodec() wireCodec { return wireCodec{proto: encoding.GetCodecV2(grpcproto.Name)} }

func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*wireFrame); ok {
		return f.parse(data)
	}
	return c.proto.Unmarshal(data, v)
}

func (wireCodec) Name() string { return grpcproto.Name }

// wireFrame is one SubscribeResponse: a batch's messages in msgs, anything
// else decoded in full in other.
type wireFrame struct {
	room    string // the subscriber's room: messages of another are malformed
	msgs    []received
	other   *roomcastv1.SubscribeResponse
	scratch []byte
}

var errBadWire = errors.New("malformed SubscribeResponse")

func (f *wireFrame) parse(data mem.BufferSlice) error {
	f.msgs, f.other = f.msgs[:0], nil
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData()
	} else {
		n := data.Len()
		if cap(f.scratch) < n {
			f.scratch = make([]byte, n)
		}
		b = f.scratch[:n]
		data.CopyTo(b)
	}
	all := b
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errBadWire
		}
		b = b[n:]
		if num != respBatch || typ != protowire.BytesType {
			f.other = new(roomcastv1.SubscribeResponse)
			return proto.Unmarshal(all, f.other)
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return errBadWire
		}
		b = b[n:]
		if err := f.parseBatch(v); err != nil {
			return err
		}
	}
	return nil
}

func (f *wireFrame) parseBatch(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errBadWire
		}
		b = b[n:]
		if num == batchMessages && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errBadWire
			}
			b = b[n:]
			if err := f.parseMessage(v); err != nil {
				return err
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b) // presence events: not asked for
		if n < 0 {
			return errBadWire
		}
		b = b[n:]
	}
	return nil
}

func (f *wireFrame) parseMessage(b []byte) error {
	m := received{badHdr: true}
	roomOK := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errBadWire
		}
		b = b[n:]
		switch {
		case num == msgRoom && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errBadWire
			}
			roomOK = string(v) == f.room
			b = b[n:]
		case num == msgOffset && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return errBadWire
			}
			m.offset = v
			b = b[n:]
		case num == msgData && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errBadWire
			}
			var ok bool
			m.ts, m.seq, m.pub, ok = getHeader(v)
			m.size, m.badHdr = len(v), !ok
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return errBadWire
			}
			b = b[n:]
		}
	}
	m.badHdr = m.badHdr || !roomOK
	f.msgs = append(f.msgs, m)
	return nil
}
