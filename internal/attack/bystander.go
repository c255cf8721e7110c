package main

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/client"
)

// bystanderEvery is how often the bystander publishes.
const bystanderEvery = 4 * time.Millisecond

// bystander is a well-behaved publisher and subscriber of one room, each
// on a connection of its own. Each message carries when it was published,
// on the bystander's monotonic clock, and the subscriber records its
// publish-to-delivery latency under the phase it was published in.
type bystander struct {
	base       time.Time
	pub, sub   *client.Client
	subscribed *client.Subscription
	room       string
	stop       context.CancelFunc
	done       sync.WaitGroup

	mu        sync.Mutex
	phase     int                 // the phase publishes are in now
	published [phases]int         // publishes accepted, by phase
	failed    [phases]int         // publishes refused or failed
	latencies [phases][]int64     // nanoseconds, by phase
	sentAt    [phases][]int64     // when each of latencies was published, since base
	began     [phases]int64       // when each phase began, since base
	events    map[string]struct{} // what else the subscription saw: disconnects, gaps
	arrived   chan struct{}       // 1-buffered: a message arrived
}

// The bystander's phases.
const (
	phaseBaseline = iota
	phaseAttack
	phaseAfter // messages published after the attack: not measured
	phases
)

func startBystander(ctx context.Context, addr, key, room string) (*bystander, error) {
	b := &bystander{base: time.Now(), room: room, events: make(map[string]struct{}), arrived: make(chan struct{}, 1)}
	var err error
	if b.pub, err = client.Dial(addr, client.WithBearerToken(key)); err != nil {
		return nil, err
	}
	if b.sub, err = client.Dial(addr, client.WithBearerToken(key)); err != nil {
		b.pub.Close()
		return nil, err
	}
	ctx, b.stop = context.WithCancel(ctx) // the subscription's life
	joined := make(chan struct{})
	go func() { // Subscribe waits as long as ctx
		select {
		case <-joined:
		case <-time.After(10 * time.Second):
			b.stop()
		}
	}()
	b.subscribed, err = b.sub.Subscribe(ctx, room)
	close(joined)
	if err != nil {
		b.stop()
		b.pub.Close()
		b.sub.Close()
		return nil, fmt.Errorf("bystander: subscribe: %w", err)
	}
	b.done.Add(2)
	go b.receive(ctx)
	go b.publish(ctx)
	return b, nil
}

// setPhase puts the publishes from now on in phase p.
func (b *bystander) setPhase(p int) {
	b.mu.Lock()
	b.phase = p
	b.began[p] = int64(time.Since(b.base))
	b.mu.Unlock()
}

func (b *bystander) publish(ctx context.Context) {
	defer b.done.Done()
	tick := time.NewTicker(bystanderEvery)
	defer tick.Stop()
	var msg [9]byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		b.mu.Lock()
		p := b.phase
		b.mu.Unlock()
		msg[0] = byte(p)
		binary.BigEndian.PutUint64(msg[1:], uint64(time.Since(b.base)))
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := b.pub.Publish(callCtx, b.room, msg[:])
		cancel()
		if ctx.Err() != nil {
			return
		}
		b.mu.Lock()
		if err != nil {
			b.failed[p]++
			b.events["publish: "+status.Code(err).String()] = struct{}{}
		} else {
			b.published[p]++
		}
		b.mu.Unlock()
	}
}

func (b *bystander) receive(ctx context.Context) {
	defer b.done.Done()
	for {
		ev, err := b.subscribed.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				b.mu.Lock()
				b.events["subscription ended: "+err.Error()] = struct{}{}
				b.mu.Unlock()
			}
			return
		}
		now := time.Since(b.base)
		b.mu.Lock()
		switch {
		case ev.Message != nil:
			if d := ev.Message.GetData(); len(d) == 9 && int(d[0]) < phases {
				sent := time.Duration(binary.BigEndian.Uint64(d[1:]))
				b.latencies[d[0]] = append(b.latencies[d[0]], int64(now-sent))
				b.sentAt[d[0]] = append(b.sentAt[d[0]], int64(sent))
			}
			select {
			case b.arrived <- struct{}{}:
			default:
			}
		case ev.Disconnected != nil:
			b.events["disconnected"] = struct{}{}
		case ev.Gap != nil:
			b.events["gap"] = struct{}{}
		}
		b.mu.Unlock()
	}
}

// finish stops publishing, waits up to wait for the deliveries still due,
// and closes the bystander.
func (b *bystander) finish(wait time.Duration) {
	b.setPhase(phaseAfter)
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for due := true; due; { // until every accepted publish of the measured phases arrived
		b.mu.Lock()
		due = b.published[phaseBaseline]+b.published[phaseAttack] > len(b.latencies[phaseBaseline])+len(b.latencies[phaseAttack])
		b.mu.Unlock()
		if due {
			select {
			case <-b.arrived:
			case <-timeout.C:
				due = false
			}
		}
	}
	b.stop()
	b.done.Wait()
	b.subscribed.Close()
	b.pub.Close()
	b.sub.Close()
}

// latency summarizes one phase.
type latency struct {
	Published int     `json:"published"`
	Failed    int     `json:"failed"`
	Delivered int     `json:"delivered"`
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	MaxMS     float64 `json:"max_ms"`
}

func (b *bystander) stats(p int) latency {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := slices.Clone(b.latencies[p])
	slices.Sort(s)
	l := latency{Published: b.published[p], Failed: b.failed[p], Delivered: len(s)}
	if len(s) > 0 {
		q := func(f float64) float64 { return float64(nearestRank(s, f)) / 1e6 }
		l.P50MS, l.P99MS, l.MaxMS = q(0.50), q(0.99), float64(s[len(s)-1])/1e6
	}
	return l
}

// nearestRank is the quantile f of sorted, which is not empty, by the
// nearest-rank method.
func nearestRank(sorted []int64, f float64) int64 {
	return sorted[max(0, int(math.Ceil(f*float64(len(sorted))))-1)]
}

// slowSample is one of a phase's slowest deliveries: when it was published,
// in milliseconds since the phase began, and its latency.
type slowSample struct {
	AtMS      float64 `json:"at_ms"`
	LatencyMS float64 `json:"latency_ms"`
}

// slowest returns phase p's slowest hundredth of deliveries (those at or
// past its p99), in the order they were published: whether the tail comes
// from one moment of the phase (an attack's start or end) or from all of it.
func (b *bystander) slowest(p int) []slowSample {
	b.mu.Lock()
	defer b.mu.Unlock()
	lat := b.latencies[p]
	if len(lat) == 0 {
		return nil
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	p99 := nearestRank(s, 0.99)
	var out []slowSample
	for i, l := range lat {
		if l >= p99 {
			out = append(out, slowSample{AtMS: float64(b.sentAt[p][i]-b.began[p]) / 1e6, LatencyMS: float64(l) / 1e6})
		}
	}
	slices.SortFunc(out, func(x, y slowSample) int { return cmp.Compare(x.AtMS, y.AtMS) })
	return out
}

// seen lists what else the bystander saw, sorted.
func (b *bystander) seen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s []string
	for e := range b.events {
		s = append(s, e)
	}
	slices.Sort(s)
	return s
}
