package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
)

// memory is what the server process holds at one point.
type memory struct {
	rss        uint64 // VmRSS
	heap       uint64 // MemStats.HeapInuse
	stacks     uint64 // MemStats.StackInuse
	goroutines int
}

// maxCollections bounds the garbage collections readMemory runs.
const maxCollections = 16

// readMemory reads the process's memory as it stands when the server has
// been idle for a while: it collects garbage until goroutine stacks stop
// shrinking (each collection halves a stack that uses under a quarter of
// it, and an idle server collects at least every two minutes), then
// returns what was freed to the system.
func readMemory() memory {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	for range maxCollections {
		before := ms.StackInuse
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if ms.StackInuse >= before {
			break
		}
	}
	debug.FreeOSMemory()
	runtime.ReadMemStats(&ms)
	return memory{rss: vmRSS(), heap: ms.HeapInuse, stacks: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// vmRSS is the process's resident set in bytes; 0 where /proc has none.
func vmRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// report prints the three readings and what each connection and stream
// added between them.
func report(w io.Writer, o options, base, connected, subscribed memory) {
	streams := o.connections * o.streams
	fmt.Fprintf(w, "idle memory of the server: %d connections × %d streams (%d streams in %d rooms)\n", o.connections, o.streams, streams, o.rooms)
	fmt.Fprintf(w, "%-12s %12s %12s %12s %11s\n", "", "RSS", "heap", "stacks", "goroutines")
	for _, r := range []struct {
		name string
		m    memory
	}{{"no client", base}, {"connected", connected}, {"subscribed", subscribed}} {
		fmt.Fprintf(w, "%-12s %12s %12s %12s %11d\n", r.name, mib(r.m.rss), mib(r.m.heap), mib(r.m.stacks), r.m.goroutines)
	}
	per := func(what string, from, to memory, n int) {
		fmt.Fprintf(w, "%-34s RSS %7.1f KB  heap+stacks %7.1f KB (stacks %5.1f KB)  goroutines %5.2f\n", what,
			kb(to.rss, from.rss, n), kb(to.heap+to.stacks, from.heap+from.stacks, n), kb(to.stacks, from.stacks, n),
			float64(to.goroutines-from.goroutines)/float64(n))
	}
	per("per connection, no stream:", base, connected, o.connections)
	per("per stream, beyond its connection:", connected, subscribed, streams)
	per(fmt.Sprintf("per connection with %d streams:", o.streams), base, subscribed, o.connections)
	per("per stream, connections included:", base, subscribed, streams)
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// kb is (to - from) / n in kilobytes of 1000 bytes, as the issue counts.
func kb(to, from uint64, n int) float64 { return (float64(to) - float64(from)) / float64(n) / 1000 }

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
