package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// natsTarget is an embedded NATS core server in the parent process.
type natsTarget struct{ ns *natsserver.Server }

func startNATS() (*natsTarget, error) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, fmt.Errorf("starting nats-server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, errors.New("nats-server did not accept connections within 10s")
	}
	return &natsTarget{ns: ns}, nil
}

func (t *natsTarget) addrs() []string { return []string{t.ns.ClientURL()} }

// cutOff is how many clients the server disconnected as slow consumers.
func (t *natsTarget) cutOff() (uint64, error) {
	v, err := t.ns.Varz(nil)
	if err != nil {
		return 0, err
	}
	return uint64(v.SlowConsumers), nil
}

func (t *natsTarget) close() {
	t.ns.Shutdown()
	t.ns.WaitForShutdown()
}

// natsDriver runs NATS core publishers and subscribers with nats.go: the
// same fan-out shape as roomcast's, one subject per room, each subscription
// delivered on a goroutine of its own as a stream is.
type natsDriver struct {
	w         *worker
	conns     []*nats.Conn // the subscribers'
	pubConns  []*nats.Conn // one per publisher
	closing   atomic.Bool
	closeOnce sync.Once
}

func newNATSDriver(w *worker) *natsDriver { return &natsDriver{w: w} }

func (d *natsDriver) connect(ctx context.Context) error {
	for i := range d.w.spec.Connections + d.w.spec.Publishers {
		if err := ctx.Err(); err != nil {
			return err
		}
		nc, err := nats.Connect(d.w.spec.Addrs[0],
			nats.Name(fmt.Sprintf("bench-%d", i)),
			nats.Timeout(connectTimeout),
			nats.NoReconnect(), // a lost connection fails the trial
			nats.ErrorHandler(d.asyncError),
			nats.DisconnectErrHandler(d.disconnected),
		)
		if err != nil {
			return fmt.Errorf("connecting to %s: %w", d.w.spec.Addrs[0], err)
		}
		if i < d.w.spec.Connections {
			d.conns = append(d.conns, nc)
		} else {
			d.pubConns = append(d.pubConns, nc)
		}
	}
	return nil
}

func (d *natsDriver) asyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if d.closing.Load() {
		return
	}
	if errors.Is(err, nats.ErrSlowConsumer) {
		d.w.fail("NATS subscription %s: cut off as a slow consumer: %v", sub.Subject, err)
		return
	}
	d.w.fail("NATS: %v", err)
}

func (d *natsDriver) disconnected(nc *nats.Conn, err error) {
	if d.closing.Load() {
		return
	}
	d.w.fail("NATS connection %s lost: %v", nc.Opts.Name, err)
}

func (d *natsDriver) subscribe(context.Context) error {
	for _, s := range d.w.subs {
		var one [1]received // the callbacks of one subscription run one at a time
		_, err := d.conns[s.id%len(d.conns)].Subscribe(s.room.name, func(m *nats.Msg) {
			r := &one[0]
			var ok bool
			r.ts, r.seq, r.pub, ok = getHeader(m.Data)
			r.size, r.badHdr = len(m.Data), !ok || m.Subject != s.room.name
			d.w.accept(s, one[:], false, d.w.now())
			s.frames.Add(1)
		})
		if err != nil {
			return fmt.Errorf("subscriber %d (%s): %w", s.id, s.room.name, err)
		}
	}
	// A flush is a round trip: once it returns, the server has every
	// subscription of the connection.
	for _, nc := range d.conns {
		if err := nc.FlushTimeout(subscribeTimeout); err != nil {
			return fmt.Errorf("flushing subscriptions: %w", err)
		}
	}
	return nil
}

func (d *natsDriver) publisher(p int) (publishFunc, int) {
	nc := d.pubConns[p]
	every, n := d.w.spec.FlushEvery, 0 // one lane: n is its own
	return func(_ context.Context, r *room, payload []byte) error {
		if err := nc.Publish(r.name, payload); err != nil { // copies payload into its buffer
			return err
		}
		if n++; every > 0 && n%every == 0 {
			return nc.FlushTimeout(publishTimeout) // a round trip: the server has them all
		}
		return nil
	}, 1 // one lane: a connection's messages keep their order
}

func (d *natsDriver) close() {
	d.closeOnce.Do(func() {
		d.closing.Store(true)
		for _, nc := range append(d.conns, d.pubConns...) {
			nc.Close()
		}
	})
}
