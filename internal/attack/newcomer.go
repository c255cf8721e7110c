package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/roomcast/roomcast/internal/rawh2"
)

// newcomerAddr is where a newcomer dials from: another client address than
// the attacker's (Linux routes all of 127.0.0.0/8 to loopback).
const newcomerAddr = "127.0.0.2"

// newcomerEvery and newcomerWait are how often a newcomer dials during an
// attack, and how long it waits to be served.
const (
	newcomerEvery = 250 * time.Millisecond
	newcomerWait  = 3 * time.Second
)

// newcomers dials the server at addr from newcomerAddr every newcomerEvery
// while at least newcomerWait of ctx is left, as honest clients connecting
// during the attack would, each waiting up to newcomerWait to be served:
// its dial and HTTP/2 preface answered by the server's transport (a PING's
// answer). None waits past ctx's end, which would stretch the attack for
// the bystander. It returns what they saw once the last is done.
func newcomers(ctx context.Context, addr string) string {
	var (
		mu     sync.Mutex
		took   []time.Duration
		failed int
		wg     sync.WaitGroup
	)
	tick := time.NewTicker(newcomerEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return newcomerSummary(took, failed)
		case <-tick.C:
		}
		if end, ok := ctx.Deadline(); ok && time.Until(end) < newcomerWait {
			continue
		}
		wg.Go(func() {
			d, ok := newcomer(ctx, addr)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				took = append(took, d)
			} else {
				failed++
			}
		})
	}
}

// newcomer dials once and reports how long it took to be served, or false.
func newcomer(ctx context.Context, addr string) (time.Duration, bool) {
	wctx, cancel := context.WithTimeout(ctx, newcomerWait)
	defer cancel()
	start := time.Now()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(newcomerAddr)}}
	c, err := d.DialContext(wctx, "tcp", addr)
	if err != nil {
		return 0, false
	}
	defer c.Close()
	h2, err := rawh2.New(c)
	if err != nil || h2.Probe(1) != nil {
		return 0, false
	}
	if _, err := h2.WaitProbe(wctx, 1); err != nil {
		return 0, false
	}
	return time.Since(start), true
}

func newcomerSummary(took []time.Duration, failed int) string {
	if len(took) == 0 && failed == 0 {
		return fmt.Sprintf("no newcomers from %s: the attack is shorter than %v", newcomerAddr, newcomerWait)
	}
	if len(took) == 0 {
		return fmt.Sprintf("newcomers from %s: none of %d served within %v", newcomerAddr, failed, newcomerWait)
	}
	slices.Sort(took)
	return fmt.Sprintf("newcomers from %s: %d served (median %v, slowest %v), %d not within %v", newcomerAddr,
		len(took), took[len(took)/2].Round(10*time.Microsecond), took[len(took)-1].Round(10*time.Microsecond), failed, newcomerWait)
}
