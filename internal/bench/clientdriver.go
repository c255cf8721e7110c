package bench

import (
	"context"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/client"
)

// clientDriver runs roomcast subscribers as applications do, on the
// project's client package: a client.Client per connection, a
// client.Subscription per subscriber stream, its messages taken with Next.
// A lost stream, a gap or any event but a message fails the trial: the
// subscription would reconnect, and the benchmark must not hide that.
type clientDriver struct {
	w     *worker
	pubs  clientPublishers
	conns []*client.Client // the subscribers'

	ctx       context.Context // the subscriptions'; cancelled by close
	cancel    context.CancelFunc
	receivers sync.WaitGroup
	closing   atomic.Bool
	closeOnce sync.Once
}

func newClientDriver(w *worker) *clientDriver {
	ctx, cancel := context.WithCancel(context.Background())
	return &clientDriver{w: w, pubs: clientPublishers{w: w}, ctx: ctx, cancel: cancel}
}

func (d *clientDriver) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	opts := clientOptions(d.w.spec)
	d.conns = make([]*client.Client, d.w.spec.Connections)
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, subscribeParallel)
	var wg sync.WaitGroup
	for i := range d.conns { // in parallel: there may be thousands
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := dialClient(ctx, d.w.spec.Addrs[d.w.connNode(i)], opts)
			mu.Lock()
			defer mu.Unlock()
			d.conns[i] = c
			if err != nil && first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return d.pubs.connect(ctx)
}

func (d *clientDriver) subscribe(ctx context.Context) error {
	return subscribeAll(ctx, d.w.subs, d.cancel, d.join)
}

// join subscribes s on its connection, joins its room and starts
// receiving.
func (d *clientDriver) join(s *subscriber) error {
	sub, err := d.conns[d.w.subConn(s.id)].Subscribe(d.ctx)
	if err != nil {
		return err
	}
	res, err := sub.Join(d.ctx, s.room.name)
	if err != nil {
		sub.Close()
		return err
	}
	s.last = res.Offset
	d.receivers.Go(func() { d.receive(s, sub) })
	return nil
}

func (d *clientDriver) receive(s *subscriber, sub *client.Subscription) {
	defer sub.Close()
	var one [1]received
	for {
		ev, err := sub.Next(d.ctx)
		if err != nil {
			// Once the driver cancelled them (closing, or joining failed:
			// the subscribe step says why), their end is no news.
			if d.ctx.Err() == nil {
				d.w.fail("subscriber %d (%s): subscription ended: %v", s.id, s.room.name, err)
			}
			return
		}
		switch {
		case ev.Message != nil:
			m, r := ev.Message, &one[0]
			data := m.GetData()
			var ok bool
			r.offset = m.GetOffset()
			r.ts, r.seq, r.pub, ok = getHeader(data)
			r.size, r.badHdr = len(data), !ok || m.GetRoom() != s.room.name
			d.w.accept(s, one[:], true, d.w.now())
		case ev.Disconnected != nil && status.Code(ev.Disconnected.Err) == codes.ResourceExhausted:
			d.w.fail("subscriber %d (%s): cut off as a slow consumer: %v", s.id, s.room.name, ev.Disconnected.Err)
		case ev.Disconnected != nil:
			if !d.closing.Load() {
				d.w.fail("subscriber %d (%s): stream lost: %v", s.id, s.room.name, ev.Disconnected.Err)
			}
		default:
			d.w.fail("subscriber %d (%s): unexpected event %+v", s.id, s.room.name, *ev)
		}
	}
}

func (d *clientDriver) publisher(p int) (publishFunc, int) { return d.pubs.publisher(p) }

func (d *clientDriver) close() {
	d.closeOnce.Do(func() {
		d.closing.Store(true)
		d.cancel()
		d.receivers.Wait()
		for _, c := range d.conns {
			if c != nil {
				c.Close()
			}
		}
		d.pubs.close()
	})
}
