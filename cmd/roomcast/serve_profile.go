package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
)

// profileFlags are serve's profiling flags: off unless asked for.
type profileFlags struct {
	cpu string // --cpuprofile: a file for the CPU profile of the whole run
}

func (p *profileFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&p.cpu, "cpuprofile", "",
		"write a CPU profile of the server, from its start to its shutdown, to `FILE` (read it with go tool pprof), to see where its CPU goes under a load; off by default")
}

// start starts what was asked for, and returns what stops it and writes
// it out; the caller runs that once the server has stopped.
func (p *profileFlags) start() (stop func() error, err error) {
	if p.cpu == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(p.cpu)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		return nil
	}, nil
}
