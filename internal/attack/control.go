package main

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// (k) The control: the attacker makes no call at all and keeps its core
// busy. The server does nothing for it, so whatever the bystander loses is
// the attacker's CPU shared with the server's or the bystander's threads:
// under --layout shared, the share of every other row that no server can
// remove; under isolated, nothing but the machine's noise.
func cpuBurn(ctx context.Context, s childSpec) (string, error) {
	var spins atomic.Int64 // keeps the loop from being optimized away
	var wg sync.WaitGroup
	start := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			x := uint64(1)
			for !ended(ctx) {
				for range 1 << 16 { // a few hundred microseconds between looks at the clock
					x = x*6364136223846793005 + 1442695040888963407
				}
			}
			spins.Add(int64(x & 1))
		})
	}
	wg.Wait()
	return fmt.Sprintf("no calls; %d threads kept busy for %.1f s", runtime.GOMAXPROCS(0), time.Since(start).Seconds()), nil
}
