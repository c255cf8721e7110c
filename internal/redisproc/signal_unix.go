//go:build unix

package redisproc

import (
	"os"
	"syscall"
)

// resume continues proc if it was stopped (SIGSTOP), so that it can handle
// SIGTERM.
func resume(proc *os.Process) { proc.Signal(syscall.SIGCONT) }
