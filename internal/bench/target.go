package bench

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sync"
	"time"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/internal/serveconfig"
	"github.com/roomcast/roomcast/server"
)

// target is the server a trial measures.
type target interface {
	// addrs are its nodes' addresses: one, but for a cluster.
	addrs() []string
	// cutOff is how many subscribers the server cut off, so far.
	cutOff() (uint64, error)
	close()
}

// roomcastTarget is one roomcast server in the parent process, or, on
// Redis, several: the nodes of one broker.
type roomcastTarget struct {
	nodes  []*server.Server
	lis    []net.Listener
	served chan error // one value per node once it stops serving
}

// startRoomcast serves roomcast on loopback ports as "roomcast serve"
// builds it by default (serveLimits, a registry of metrics, the access log
// at its default level), as built or encoding per subscriber: one server in
// memory, or with redis, nodes servers sharing rooms through it.
func startRoomcast(encodeEach bool, subscribers, conns, streamsPerConn int, redis *redisCluster, nodes int) (_ *roomcastTarget, err error) {
	t := &roomcastTarget{served: make(chan error, nodes)}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), redisCallTimeout) // bounds connecting to Redis
	defer cancel()
	for range nodes {
		reg, err := serveconfig.NewRegistry()
		if err != nil {
			return nil, err
		}
		opts := []server.Option{server.WithLogger(serveLogger())}
		limits, _ := serveLimits(subscribers, conns, streamsPerConn)
		opts = append(opts, limits.ServerOptions()...)
		opts = append(opts, server.WithAccessLog(server.DefaultAccessLogLevel), server.WithMetrics(reg))
		var bopts []broker.Option
		if encodeEach {
			bopts = append(bopts, broker.WithEncodePerSubscriber(true))
		}
		if redis != nil {
			cfg := redisengine.Config{Addrs: redis.addrs, Prefix: redis.prefix}
			bopts = append(bopts, broker.WithEngine(redisengine.Factory(ctx, cfg)))
		}
		if len(bopts) > 0 {
			opts = append(opts, server.WithBrokerOptions(bopts...))
		}
		srv, err := server.New(opts...)
		if err != nil {
			return nil, err
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			srv.Close()
			return nil, err
		}
		t.nodes, t.lis = append(t.nodes, srv), append(t.lis, lis)
		go func() { t.served <- srv.Serve(lis) }()
	}
	return t, nil
}

func (t *roomcastTarget) addrs() []string {
	out := make([]string, len(t.lis))
	for i, l := range t.lis {
		out[i] = l.Addr().String()
	}
	return out
}

func (t *roomcastTarget) cutOff() (uint64, error) { return t.stats().Lagged, nil }

// stats sums the nodes' broker counters: each publish is counted by the
// node it was made on, each delivery by the node of the subscriber.
func (t *roomcastTarget) stats() broker.Stats {
	var sum broker.Stats
	for _, n := range t.nodes {
		st := n.Broker().Stats()
		sum.Published += st.Published
		sum.Delivered += st.Delivered
		sum.Lagged += st.Lagged
	}
	return sum
}

// writerStats sums the nodes' connection writers' counts.
func (t *roomcastTarget) writerStats() server.WriterStats {
	var sum server.WriterStats
	for _, n := range t.nodes {
		sum = sum.Plus(n.WriterStats())
	}
	return sum
}

// close shuts every node down, at once, and waits for them.
func (t *roomcastTarget) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range t.nodes {
		wg.Go(func() { n.Shutdown(ctx) })
	}
	wg.Wait()
	for range t.nodes {
		<-t.served
	}
}

// remoteTarget is a roomcast server of someone else's: nothing of it is
// measured but what its clients see.
type remoteTarget struct{ address string }

func (t remoteTarget) addrs() []string         { return []string{t.address} }
func (t remoteTarget) cutOff() (uint64, error) { return 0, nil }
func (t remoteTarget) close()                  {}

// startTarget starts what a trial of variant on engine measures, for
// subscribers streams over conns connections, streamsPerConn on one at most; redis is the
// run's Redis, for EngineRedis.
func startTarget(cfg Config, variant, engine string, subscribers, conns, streamsPerConn int, redis *redisCluster) (target, error) {
	switch {
	case cfg.Server != "":
		return remoteTarget{cfg.Server}, nil
	case variant == VariantNATS:
		return startNATS()
	case variant == VariantWatch && engine == EngineMemory:
		return startWatch(subscribers, conns, streamsPerConn)
	case !slices.Contains(AllVariants, variant):
		return nil, fmt.Errorf("unknown variant %q", variant)
	case engine == EngineRedis:
		return startRoomcast(variant == VariantEncodeEach, subscribers, conns, streamsPerConn, redis, cfg.Nodes)
	}
	return startRoomcast(variant == VariantEncodeEach, subscribers, conns, streamsPerConn, nil, 1)
}

// memSamples are the runtime metrics whose sum is MemStats.HeapInuse plus
// StackInuse: heap spans in use and goroutine stacks.
var memSamples = []metrics.Sample{
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/heap/unused:bytes"},
	{Name: "/memory/classes/heap/stacks:bytes"},
}

// memInUse is the process's heap in use plus its goroutine stacks, and the
// stacks alone, read without stopping the world.
func memInUse() (total, stacks uint64) {
	s := make([]metrics.Sample, len(memSamples))
	copy(s, memSamples)
	metrics.Read(s)
	for i, x := range s {
		if x.Value.Kind() == metrics.KindUint64 {
			total += x.Value.Uint64()
			if i == len(s)-1 {
				stacks = x.Value.Uint64()
			}
		}
	}
	return total, stacks
}

// idleMemory is memInUse and the resident set size once garbage is
// collected and the free heap returned to the system, so that the RSS of
// the moment is what the process holds, not what an earlier trial left.
func idleMemory() (total, stacks, rss uint64) {
	runtime.GC()
	debug.FreeOSMemory()
	total, stacks = memInUse()
	rss, _ = residentBytes()
	return total, stacks, rss
}
