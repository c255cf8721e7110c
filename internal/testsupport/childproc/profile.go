package childproc

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// Profile starts the profiles of this process, playing r: its CPU profile,
// written to cpuFile, and its allocation profile (every 512th byte sampled,
// from now on), written to memFile when stop is called; an empty name
// leaves that profile off. stop ends them, saying on standard error why a
// profile could not be written; call it once.
func (r Role) Profile(cpuFile, memFile string) (stop func(), err error) {
	var cpu *os.File
	if cpuFile != "" {
		if cpu, err = os.Create(cpuFile); err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return nil, err
		}
	}
	if memFile != "" {
		runtime.MemProfileRate = 512
	}
	return func() {
		var errs []error
		if memFile != "" {
			errs = append(errs, writeAllocs(memFile))
		}
		if cpu != nil {
			pprof.StopCPUProfile()
			errs = append(errs, cpu.Close())
		}
		if err := errors.Join(errs...); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", r.Name, err)
		}
	}, nil
}

// writeAllocs writes the process's allocation profile to file.
func writeAllocs(file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
