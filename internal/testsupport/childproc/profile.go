package childproc

import (
	"errors"
	"os"
	"runtime"
	"runtime/pprof"
)

// Profile starts this process's profiles: its CPU profile, written to
// cpuFile, and its allocation profile (every 512th byte sampled, from now
// on), written to memFile when stop is called; an empty name leaves that
// profile off. stop ends them and returns why a profile could not be
// written; call it once.
func Profile(cpuFile, memFile string) (stop func() error, err error) {
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
	return func() error {
		var errs []error
		if memFile != "" {
			errs = append(errs, writeAllocs(memFile))
		}
		if cpu != nil {
			pprof.StopCPUProfile()
			errs = append(errs, cpu.Close())
		}
		return errors.Join(errs...)
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
