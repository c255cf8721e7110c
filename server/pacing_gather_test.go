package server

import (
	"math/rand/v2"
	"testing"
	"time"
)

// simPass is what a simulated pass did: whether it was held and the
// messages each of its responses carried.
type simPass struct {
	held bool
	msgs int
}

// simulate drives p as the writer of a connection of streams streams, each
// of which gets a message at each of arrivals (ns on the server's clock,
// ascending). The writer wakes delay ns after the message that pokes it,
// holds as p says, and collects at once everything that came before its
// pass began; its passes take no time.
func simulate(p *passPacer, arrivals []int64, delay int64, streams int) []simPass {
	each := make([][]int64, streams)
	for i := range each {
		each[i] = arrivals
	}
	return simulateStreams(p, each, delay)
}

// simulateStreams is simulate with each stream's own arrivals.
func simulateStreams(p *passPacer, arrivals [][]int64, delay int64) []simPass {
	var passes []simPass
	next := make([]int, len(arrivals))       // each stream's first message not collected
	servedAt := make([]int64, len(arrivals)) // each stream's, for p.served
	for {
		first := int64(-1)
		for s, a := range arrivals {
			if next[s] < len(a) && (first < 0 || a[next[s]] < first) {
				first = a[next[s]]
			}
		}
		if first < 0 {
			return passes
		}
		now := first + delay
		p.woke(delay)
		d := p.holdFor(now)
		if d > 0 {
			now += int64(d)
		}
		p.begin(now)
		responses, msgs := 0, 0
		for s, a := range arrivals {
			n := next[s]
			for next[s] < len(a) && a[next[s]] <= now {
				next[s]++
			}
			if next[s] > n {
				responses, msgs = responses+1, msgs+next[s]-n
				p.served(&servedAt[s], 1+next[s]-n)
			}
		}
		p.collected(responses, responses+msgs)
		passes = append(passes, simPass{held: d > 0, msgs: msgs / responses})
	}
}

// warmPacer returns a pacer with bound whose wake-ups have come delay
// late for a while.
func warmPacer(bound, delay time.Duration) passPacer {
	p := passPacer{max: int64(bound)}
	for range 64 {
		p.woke(int64(delay))
	}
	return p
}

// every returns n arrivals every gap ns from start.
func every(start, gap int64, n int) []int64 {
	a := make([]int64, n)
	for i := range a {
		a[i] = start + int64(i)*gap
	}
	return a
}

// holdsIn returns how many of passes were held and their messages per pass,
// averaged.
func holdsIn(passes []simPass) (held int, msgs float64) {
	total := 0
	for _, ps := range passes {
		if ps.held {
			held++
		}
		total += ps.msgs
	}
	return held, float64(total) / float64(max(len(passes), 1))
}

// The paced shape: a message every 10 ms to every stream, and wake-ups
// late by half a millisecond (the last of many writers poked by one
// publish), which the wake delay alone takes for a load worth holds of
// 16 ms. Holds there would gather nothing but the message that woke the
// writer: after a short learning, no pass is held. Nor is one when
// wake-ups are late enough for holds of 20 ms or more, which gather two
// messages by doubling their latency.
func TestPacerDoesNotHoldWhatGathersNothing(t *testing.T) {
	const bound = 50 * time.Millisecond
	for _, delay := range []time.Duration{200 * time.Microsecond, 500 * time.Microsecond, 700 * time.Microsecond, 2 * time.Millisecond} {
		p := warmPacer(bound, delay)
		passes := simulate(&p, every(int64(time.Second), int64(10*time.Millisecond), 500), int64(delay), 20)
		const learning = 16
		if held, _ := holdsIn(passes[learning:]); held != 0 {
			t.Errorf("wake-ups %v late, a message every 10 ms: %d of %d passes after the first %d held, want none", delay, held, len(passes)-learning, learning)
		}
	}
}

// A publish's fan-out readies some of a connection's streams just after
// its writer's pass began, so the next pass serves them after a short
// span: that is no burst of messages, and is not held.
func TestPacerDoesNotHoldForStreamsReadiedLate(t *testing.T) {
	const bound = 50 * time.Millisecond
	const delay = 500 * time.Microsecond
	arrivals := make([][]int64, 20)
	for i := range arrivals {
		late := int64(0)
		if i < 3 {
			late = int64(2 * delay) // readied after the pass the others woke began
		}
		arrivals[i] = every(int64(time.Second)+late, int64(10*time.Millisecond), 500)
	}
	p := warmPacer(bound, delay)
	passes := simulateStreams(&p, arrivals, int64(delay))
	const learning = 32
	if held, _ := holdsIn(passes[learning:]); held != 0 {
		t.Errorf("%d of %d passes after the first %d held, want none", held, len(passes)-learning, learning)
	}
}

// Dense arrivals, bursty or not, hold: each held response gathers several
// messages, from the first passes on.
func TestPacerHoldsDenseArrivals(t *testing.T) {
	const bound = 50 * time.Millisecond
	rng := rand.New(rand.NewPCG(1, 2))
	bursty := make([]int64, 0, 3000)
	for at := int64(time.Second); len(bursty) < cap(bursty); {
		at += int64(rng.ExpFloat64() * float64(3*time.Millisecond))
		for range 1 + rng.IntN(4) { // 1 to 4 messages at once
			bursty = append(bursty, at)
		}
	}
	for name, arrivals := range map[string][]int64{
		"every 2ms": every(int64(time.Second), int64(2*time.Millisecond), 3000),
		"bursty":    bursty,
	} {
		p := warmPacer(bound, 500*time.Microsecond)
		passes := simulate(&p, arrivals, int64(500*time.Microsecond), 20)
		if first := firstHeld(passes); first < 0 || first > 3 {
			t.Errorf("%s: the first held pass is %d, want one of the first 3 (the first has none before it, and a writer learns that its passes serve several streams)", name, first)
		}
		held, msgs := holdsIn(passes)
		if held < len(passes)*9/10 || msgs < 4 {
			t.Errorf("%s: %d of %d passes held, %.1f messages per response, want nearly all held, at least 4", name, held, len(passes), msgs)
		}
	}
}

// A writer that stopped holding a paced stream holds again within a few
// passes of messages coming faster.
func TestPacerHoldsAgainWhenMessagesComeFaster(t *testing.T) {
	const bound = 50 * time.Millisecond
	const delay = int64(500 * time.Microsecond)
	p := warmPacer(bound, time.Duration(delay))
	paced := simulate(&p, every(int64(time.Second), int64(10*time.Millisecond), 300), delay, 20)
	if held, _ := holdsIn(paced[len(paced)-100:]); held != 0 {
		t.Fatalf("paced: %d of the last 100 passes held, want none", held)
	}
	passes := simulate(&p, every(int64(5*time.Second), int64(time.Millisecond), 1000), delay, 20)
	first := firstHeld(passes)
	if first < 0 || first > 8 {
		t.Fatalf("a message every ms after paced ones: the first held pass is %d, want one of the first 8", first)
	}
	if held, msgs := holdsIn(passes[first:]); held < (len(passes)-first)*9/10 || msgs < 4 {
		t.Errorf("a message every ms: %d of %d passes held, %.1f messages per response, want nearly all held, at least 4", held, len(passes)-first, msgs)
	}
}

// A writer whose holds reached the bound while messages came fast stops
// holding once they come slowly: passes held for the whole bound still
// measure the rate.
func TestPacerStopsHoldingWhenMessagesComeSlower(t *testing.T) {
	const bound = 50 * time.Millisecond
	const delay = int64(2 * time.Millisecond) // holds of 64 ms: the bound
	p := warmPacer(bound, time.Duration(delay))
	fast := simulate(&p, every(int64(time.Second), int64(2*time.Millisecond), 3000), delay, 20)
	if held, _ := holdsIn(fast[len(fast)-100:]); held < 90 {
		t.Fatalf("a message every 2 ms: %d of the last 100 passes held, want nearly all", held)
	}
	paced := simulate(&p, every(int64(100*time.Second), int64(10*time.Millisecond), 500), delay, 20)
	if held, _ := holdsIn(paced[len(paced)-100:]); held != 0 {
		t.Errorf("a message every 10 ms after fast ones: %d of the last 100 passes held, want none", held)
	}
}

// firstHeld returns the index of the first held pass of passes, -1 if none.
func firstHeld(passes []simPass) int {
	for i, ps := range passes {
		if ps.held {
			return i
		}
	}
	return -1
}
