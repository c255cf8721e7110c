package redisengine_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/internal/redistest"
)

// counter is a Sink that only counts.
type counter struct{ n atomic.Int64 }

func (c *counter) Deliver(string, broker.Entry)      { c.n.Add(1) }
func (c *counter) DeliverEvent(string, broker.Event) {}

func (c *counter) Reset(string, broker.Position) {}

// BenchmarkPublish publishes 1 KiB messages into 16 rooms from parallel
// goroutines, on one node, while another node tracks every room: one op is
// one publish acknowledged and delivered to the other node's Sink.
func BenchmarkPublish(b *testing.B) { benchPublish(b, false) }

// BenchmarkPublishKeyed is BenchmarkPublish with a new idempotency key on
// every publish: what checking and remembering keys costs, rooms at their
// cap of keys included once b.N passes 16 × DefaultIdempotencyKeys.
func BenchmarkPublishKeyed(b *testing.B) { benchPublish(b, true) }

func benchPublish(b *testing.B, keyed bool) {
	srv := redistest.Start(b)
	sink := &counter{}
	pub := newEngine(b, redisengine.Config{}, srv)
	node := newEngine(b, redisengine.Config{Sink: sink}, srv)
	const rooms = 16
	for i := range rooms {
		if _, _, err := node.Track(testCtx(b), fmt.Sprint("room", i), nil, 0); err != nil {
			b.Fatal(err)
		}
	}
	payload := make([]byte, 1024)
	var next atomic.Int64
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(p *testing.PB) {
		for p.Next() {
			n := next.Add(1)
			room := fmt.Sprint("room", n%rooms)
			var err error
			if keyed {
				_, _, _, err = pub.PublishKeyed(testCtx(b), room, payload, "", broker.IdempotencyKey{Owner: "bench", Key: strconv.FormatInt(n, 36) + "-0123456789abcdef"})
			} else {
				_, _, err = pub.Publish(testCtx(b), room, payload, "")
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	waitFor(b, func() string { return fmt.Sprintf("%d of %d delivered", sink.n.Load(), b.N) },
		func() bool { return sink.n.Load() >= int64(b.N) })
	b.StopTimer()
	if st := node.Stats(); st.Resets != 0 || sink.n.Load() != int64(b.N) {
		b.Fatalf("stats %+v, %d delivered for %d publishes", st, sink.n.Load(), b.N)
	}
}

// BenchmarkRedisSaturation drives Redis as hard as this machine can:
// 64-byte publishes into 64 rooms from 256 goroutines on one engine, which
// rueidis pipelines onto its connections, with no node tracking the rooms
// (the publish script's PUBLISH then reaches no subscriber). It is the
// publish path's Redis side alone, without gRPC or a hub, so that the
// client spends as little CPU per publish as it can beside Redis's. It
// runs on one Redis and on two shards, and reports publishes per second
// and Redis's CPU per publish (the change in used_cpu_sys + used_cpu_user
// of INFO cpu, summed over the shards).
func BenchmarkRedisSaturation(b *testing.B) {
	for _, shards := range []int{1, 2} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			var srvs []*redistest.Server
			for range shards {
				srvs = append(srvs, redistest.Start(b))
			}
			pub := newEngine(b, redisengine.Config{}, srvs...)
			const rooms = 64
			payload := make([]byte, 64)
			var next atomic.Int64
			cpu0 := redisCPU(b, srvs)
			b.SetParallelism(128) // × GOMAXPROCS goroutines
			b.ResetTimer()
			b.RunParallel(func(p *testing.PB) {
				for p.Next() {
					room := "room" + strconv.FormatInt(next.Add(1)%rooms, 10)
					if _, _, err := pub.Publish(testCtx(b), room, payload, ""); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
			b.ReportMetric((redisCPU(b, srvs)-cpu0)*1e6/float64(b.N), "redis-µs/publish")
		})
	}
}

// redisCPU is the CPU seconds srvs' processes have used.
func redisCPU(b *testing.B, srvs []*redistest.Server) float64 {
	var total float64
	for _, srv := range srvs {
		total += serverCPU(b, srv)
	}
	return total
}

// serverCPU is the CPU seconds srv's process has used.
func serverCPU(b *testing.B, srv *redistest.Server) float64 {
	info, err := srv.Do(b, "INFO", "cpu").ToString()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			total += f
		}
	}
	return total
}
