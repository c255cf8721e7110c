package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// profileFlags are serve's profiling flags: off unless asked for.
type profileFlags struct {
	cpu   string // --cpuprofile: a file for the CPU profile of the whole run
	trace string // --trace: a file for the execution trace of the whole run
	mem   string // --memprofile: a file for the allocations of the whole run
}

func (p *profileFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&p.cpu, "cpuprofile", "",
		"write a CPU profile of the server, from its start to its shutdown, to `FILE` (read it with go tool pprof), to see where its CPU goes under a load; off by default")
	fs.StringVar(&p.trace, "trace", "",
		"write an execution trace of the server, from its start to its shutdown, to `FILE` (read it with go tool trace), to see what its goroutines wait for under a load; large (tens of MB a second under load); off by default")
	fs.StringVar(&p.mem, "memprofile", "",
		"write a profile of what the server allocated, from its start to its shutdown, to `FILE` (read it with go tool pprof -sample_index=alloc_space), to see what makes its garbage under a load; off by default")
}

// start starts what was asked for, and returns what stops it and writes
// it out; the caller runs that once the server has stopped.
func (p *profileFlags) start() (stop func() error, err error) {
	var stops []func() error
	stopAll := func() error {
		var first error
		for _, s := range stops {
			if err := s(); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	if p.cpu != "" {
		s, err := startTo(p.cpu, "--cpuprofile", pprof.StartCPUProfile, pprof.StopCPUProfile)
		if err != nil {
			return nil, err
		}
		stops = append(stops, s)
	}
	if p.trace != "" {
		s, err := startTo(p.trace, "--trace", trace.Start, trace.Stop)
		if err != nil {
			stopAll()
			return nil, err
		}
		stops = append(stops, s)
	}
	if p.mem != "" {
		s, err := startMemProfile(p.mem)
		if err != nil {
			stopAll()
			return nil, err
		}
		stops = append(stops, s)
	}
	return stopAll, nil
}

// startTo creates path and starts a recorder writing to it; what it
// returns stops the recorder and closes the file.
func startTo(path, flagName string, begin func(io.Writer) error, end func()) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	if err := begin(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	return func() error {
		end()
		if err := f.Close(); err != nil {
			return fmt.Errorf("%s: %w", flagName, err)
		}
		return nil
	}, nil
}

// startMemProfile creates path; what it returns writes the allocations
// profile there, which the runtime samples all along.
func startMemProfile(path string) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--memprofile: %w", err)
	}
	return func() error {
		runtime.GC() // the profile is as of the last collection: take in what was allocated since
		err := pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("--memprofile: %w", err)
		}
		return nil
	}, nil
}
