package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"runtime/metrics"
	"time"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/server"
)

// target is the server a trial measures.
type target interface {
	addr() string
	// cutOff is how many subscribers the server cut off, so far.
	cutOff() (uint64, error)
	close()
}

// roomcastTarget is a roomcast server in the parent process.
type roomcastTarget struct {
	srv    *server.Server
	lis    net.Listener
	served chan error
}

// startRoomcast serves roomcast as built, or encoding per subscriber, on a
// loopback port. Only the limit on streams per connection is raised from
// the defaults, when a trial puts more on one connection.
func startRoomcast(encodeEach bool, streamsPerConn int) (*roomcastTarget, error) {
	opts := []server.Option{
		server.WithLogger(slog.New(slog.DiscardHandler)),
		server.WithMaxStreamsPerConnection(uint32(max(server.DefaultMaxStreamsPerConnection, streamsPerConn+1))),
	}
	if encodeEach {
		opts = append(opts, server.WithBrokerOptions(broker.WithEncodePerSubscriber(true)))
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
	t := &roomcastTarget{srv: srv, lis: lis, served: make(chan error, 1)}
	go func() { t.served <- srv.Serve(lis) }()
	return t, nil
}

func (t *roomcastTarget) addr() string { return t.lis.Addr().String() }

func (t *roomcastTarget) cutOff() (uint64, error) { return t.srv.Broker().Stats().Lagged, nil }

func (t *roomcastTarget) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t.srv.Shutdown(ctx)
	<-t.served
}

// remoteTarget is a roomcast server of someone else's: nothing of it is
// measured but what its clients see.
type remoteTarget struct{ address string }

func (t remoteTarget) addr() string            { return t.address }
func (t remoteTarget) cutOff() (uint64, error) { return 0, nil }
func (t remoteTarget) close()                  {}

func startTarget(cfg Config, variant string, streamsPerConn int) (target, error) {
	switch {
	case cfg.Server != "":
		return remoteTarget{cfg.Server}, nil
	case variant == VariantNATS:
		return startNATS()
	case variant == VariantRoomcast || variant == VariantEncodeEach:
		return startRoomcast(variant == VariantEncodeEach, streamsPerConn)
	}
	return nil, fmt.Errorf("unknown variant %q", variant)
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

// idleMemory is memInUse once garbage is collected.
func idleMemory() (total, stacks uint64) {
	runtime.GC()
	runtime.GC()
	return memInUse()
}
