//go:build unix

package childproc

import (
	"runtime"
	"syscall"
	"time"
)

// Spent is what a process has used so far.
type Spent struct {
	CPU     time.Duration // user and system
	Mallocs uint64        // heap allocations
	Bytes   uint64        // bytes those allocated
}

// CPUTime is this process's CPU time so far, user and system.
func CPUTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// Usage is what this process has used so far. It stops the world to read
// the heap's statistics: call it outside what is timed.
func Usage() (Spent, error) {
	cpu, err := CPUTime()
	if err != nil {
		return Spent{}, err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Spent{CPU: cpu, Mallocs: ms.Mallocs, Bytes: ms.TotalAlloc}, nil
}
