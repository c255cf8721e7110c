package chaostest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/client"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/redistest"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/faultproxy"
	"github.com/roomcast/roomcast/server"
)

// Shards of every cluster: what a restart of each brings back.
const (
	aofShard      = 0 // the append-only file (whose last second may be lost: it is fsynced every second)
	snapshotShard = 1 // the last snapshot the test saved, if any
)

// redisTimeout bounds the nodes' Redis calls, so that a paused Redis shows
// within the pause; on a loaded machine a shorter one fails publishes that
// no fault delayed.
const redisTimeout = time.Second

// node is a roomcast server of the cluster.
type node struct {
	id   int
	srv  *server.Server
	addr string
	dead bool // closed by a fault; only the test's goroutine reads or sets it
}

// cluster is roomcast nodes on two Redis shards, and the ways clients
// reach them: one fault proxy per client, forwarding to a node.
type cluster struct {
	t         *testing.T
	ctx       context.Context    // the run's: publishes and waits end with it
	cancel    context.CancelFunc // ends ctx
	shards    []*redistest.Server
	cfg       redisengine.Config
	nodes     []*node
	endpoints []*endpoint // every client's, in the order made
	ledger    *Ledger
	shardOf   map[string]int // room → the shard holding it
	restarted map[int]bool   // the shards restarted in the current phase
}

// startCluster starts two Redis shards (see aofShard and snapshotShard) and
// n nodes on them, in a key space of their own.
func startCluster(t *testing.T, ctx context.Context, n int, prefix string) *cluster {
	t.Helper()
	c := &cluster{
		t: t, ledger: NewLedger(), shardOf: make(map[string]int), restarted: make(map[int]bool),
		shards: []*redistest.Server{redistest.Start(t, redistest.WithAOF()), redistest.Start(t, redistest.WithSnapshot())},
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	t.Cleanup(c.cancel)
	c.cfg = redisengine.Config{Prefix: prefix, Timeout: redisTimeout}
	for _, s := range c.shards {
		c.cfg.Addrs = append(c.cfg.Addrs, s.Addr)
	}
	for range n {
		c.startNode()
	}
	return c
}

// startNode starts a node, which keeps the whole run's messages as history
// so that any resume within a Redis process's life recovers.
func (c *cluster) startNode() *node {
	c.t.Helper()
	engine := broker.WithEngine(redisengine.Factory(context.Background(), c.cfg))
	srv, addr := servertest.Start(c.t,
		server.WithLogger(slog.New(slog.DiscardHandler)),
		server.WithBrokerOptions(broker.WithHistory(1<<14, time.Hour), broker.WithBacklog(1<<14, 64<<20), engine))
	n := &node{id: len(c.nodes), srv: srv, addr: addr}
	c.nodes = append(c.nodes, n)
	return n
}

// mapRooms publishes a first message to each room through p and records
// which shard holds it: each room's hash is on one shard only.
func (c *cluster) mapRooms(p *publisher, rooms []string) {
	c.t.Helper()
	for _, room := range rooms {
		if err := p.publishAcked(c, room); err != nil {
			c.t.Fatal(err)
		}
		c.shardOf[room] = -1
		for i, s := range c.shards {
			n, err := s.Do(c.t, "EXISTS", c.cfg.Prefix+":{"+room+"}:m").AsInt64()
			if err != nil {
				c.t.Fatal(err)
			}
			if n == 1 {
				c.shardOf[room] = i
			}
		}
		if c.shardOf[room] < 0 {
			c.t.Fatalf("no shard holds %s", room)
		}
	}
}

// live returns the nodes no fault has closed.
func (c *cluster) live() []*node {
	var out []*node
	for _, n := range c.nodes {
		if !n.dead {
			out = append(out, n)
		}
	}
	return out
}

// endpoint is one client's way into the cluster: a proxy forwarding to a
// node, which faults cut and point elsewhere.
type endpoint struct {
	name  string
	proxy *faultproxy.Proxy
	node  *node // only the test's goroutine reads or sets it
}

func (c *cluster) endpoint(name string, to *node) *endpoint {
	e := &endpoint{name: name, proxy: faultproxy.Start(c.t, to.addr), node: to}
	c.endpoints = append(c.endpoints, e)
	return e
}

// move cuts the endpoint's connections and sends the next ones to n: the
// client reconnects there.
func (e *endpoint) move(n *node) {
	e.proxy.Hold()
	e.proxy.Sever()
	e.node = n
	e.proxy.Resume(n.addr)
}

// subscriber is a Go client Subscription in some rooms, read by a goroutine
// of its own into a Tally.
type subscriber struct {
	id    int
	ep    *endpoint
	rooms []string
	tally *Tally

	done chan struct{} // closed when the reader returns
	err  error         // why the reader returned, once done is closed
}

// subscribe connects a subscriber through its own proxy to n and joins
// rooms, one at a time so that each join's position starts its tally. The
// client backs off briefly, so that faults cost little time.
func (c *cluster) subscribe(id int, n *node, rooms []string) *subscriber {
	c.t.Helper()
	s := &subscriber{id: id, ep: c.endpoint(fmt.Sprint("sub", id), n), rooms: rooms, tally: NewTally(), done: make(chan struct{})}
	cl, err := client.Dial(s.ep.proxy.Addr(), client.WithReconnectBackoff(client.Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond}))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() }) // after the subscription's
	sub, err := cl.Subscribe(c.ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	epochs := make(map[string]string) // the epoch of each room's messages, as the client knows it
	for _, room := range rooms {
		res, err := sub.Join(c.ctx, room)
		for errors.Is(err, client.ErrUnavailable) && c.pause(failedBackoff) { // Redis slow to answer on a loaded machine
			res, err = sub.Join(c.ctx, room)
		}
		if err != nil {
			c.t.Fatalf("subscriber %d: join %s: %v", id, room, err)
		}
		epochs[room] = res.Epoch
		s.tally.Joined(room, Pos{res.Epoch, res.Offset})
	}
	go func() { // ends with the subscription, closed in the test's cleanup
		defer close(s.done)
		s.err = s.read(sub, epochs)
	}()
	c.t.Cleanup(func() {
		sub.Close()
		<-s.done
	})
	return s
}

// read feeds the subscription's events to the tally until it ends. Messages
// carry no epoch: a message is in the epoch of its room's last join, rejoin
// or gap, which is what the client itself resumes from.
func (s *subscriber) read(sub *client.Subscription, epochs map[string]string) error {
	for {
		ev, err := sub.Next(context.Background())
		if err != nil {
			return err
		}
		switch {
		case ev.Message != nil:
			m := ev.Message
			s.tally.Message(m.GetRoom(), Pos{epochs[m.GetRoom()], m.GetOffset()}, m.GetText())
		case ev.Gap != nil:
			g := ev.Gap
			epochs[g.Room] = g.Resumed.Epoch
			s.tally.Gap(g.Room, Pos{g.LastDelivered.Epoch, g.LastDelivered.Offset}, Pos{g.Resumed.Epoch, g.Resumed.Offset})
		case ev.Reconnected != nil:
			s.tally.Reconnected()
			for _, r := range ev.Reconnected.Rooms {
				epochs[r.Room] = r.Resumed.Epoch
			}
		}
	}
}

// ended returns why the subscriber's reader ended, or nil if it goes on.
func (s *subscriber) ended() error {
	select {
	case <-s.done:
		return fmt.Errorf("subscriber %d ended: %w", s.id, s.err)
	default:
		return nil
	}
}

// publisher publishes numbered messages, "p<id>.<seq>", through its own
// proxy to a node, and records those acknowledged in the ledger. It uses
// the generated client, whose answer carries the epoch as well as the
// offset.
type publisher struct {
	id  int
	ep  *endpoint
	rpc roomcastv1.BrokerServiceClient
	seq int
}

func (c *cluster) publisher(id int, n *node) *publisher {
	c.t.Helper()
	p := &publisher{id: id, ep: c.endpoint(fmt.Sprint("pub", id), n)}
	p.rpc = roomcastv1.NewBrokerServiceClient(servertest.Dial(c.t, p.ep.proxy.Addr(),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true))))
	return p
}

// errNotAcked is a publish that failed: it may or may not have been
// sequenced, so nothing is expected of it.
var errNotAcked = errors.New("not acknowledged")

// publish sends the publisher's next message to room once, never again
// (a retry would be a second message with the same payload), and records
// it if it was acknowledged.
func (p *publisher) publish(c *cluster, room string) error {
	p.seq++
	text := fmt.Sprintf("p%d.%d", p.id, p.seq)
	ctx, cancel := context.WithTimeout(c.ctx, 3*time.Second)
	defer cancel()
	resp, err := p.rpc.Publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: text}})
	if err != nil {
		return fmt.Errorf("%w: %s to %s: %v", errNotAcked, text, room, err)
	}
	return c.ledger.Acked(room, Pos{resp.GetEpoch(), resp.GetOffset()}, text)
}

// publishAcked publishes the publisher's next messages to room until one
// is acknowledged, within the run's context.
func (p *publisher) publishAcked(c *cluster, room string) error {
	for {
		err := p.publish(c, room)
		if !errors.Is(err, errNotAcked) {
			return err
		}
		if !c.pause(failedBackoff) {
			return fmt.Errorf("%v, and then %w", err, c.ctx.Err())
		}
	}
}

// progress counts the publishes of a phase, and wakes the test's goroutine
// as they go.
type progress struct {
	n     atomic.Int64
	moved chan struct{} // 1-buffered
}

func newProgress() *progress { return &progress{moved: make(chan struct{}, 1)} }

func (p *progress) add() {
	p.n.Add(1)
	select {
	case p.moved <- struct{}{}:
	default:
	}
}

// reach waits until n publishes have been attempted, or all publishers are
// done (pubs closed).
func (p *progress) reach(ctx context.Context, n int64, pubs <-chan struct{}) error {
	for p.n.Load() < n {
		select {
		case <-p.moved:
		case <-pubs:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("waiting for publish %d (at %d): %w", n, p.n.Load(), ctx.Err())
		}
	}
	return nil
}

// failedBackoff spaces a publisher's attempts after a failure, so that a
// node or Redis being down does not make it spin through its quota.
const failedBackoff = 20 * time.Millisecond

// runPublishers runs each publisher for its count of publishes to rooms
// drawn by roomOf; it returns at once, with a channel closed when they are
// all done and the acknowledged count.
func runPublishers(c *cluster, pubs []*publisher, counts []int, roomOf func(pub, i int) string, prog *progress) (<-chan struct{}, *atomic.Int64) {
	var wg sync.WaitGroup
	var acked atomic.Int64
	for i, p := range pubs {
		wg.Go(func() {
			for k := range counts[i] {
				err := p.publish(c, roomOf(i, k))
				prog.add()
				switch {
				case err == nil:
					acked.Add(1)
				case errors.Is(err, errNotAcked):
					if !c.pause(failedBackoff) { // pacing the next attempt, not waiting for a condition
						return
					}
				default:
					c.t.Error(err)
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { // ends with the publishers, which end within their count or the context
		wg.Wait()
		close(done)
	}()
	return done, &acked
}
