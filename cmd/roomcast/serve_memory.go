package main

import (
	"log/slog"
	"runtime/debug"
)

// setMemoryLimit gives the Go runtime serve's default soft memory limit,
// limit bytes (serveconfig.DefaultMemoryLimit), unless the environment
// sets one with GOMEMLIMIT, which the runtime has applied already, or
// limit is 0 (unknown). It logs the limit in force. GOGC still applies
// below the limit, and GOGC=off with GOMEMLIMIT is the operator's to set.
func setMemoryLimit(log *slog.Logger, getenv func(string) string, limit int64) {
	if v := getenv("GOMEMLIMIT"); v != "" {
		log.Info("memory limit", "bytes", debug.SetMemoryLimit(-1), "from", "GOMEMLIMIT")
		return
	}
	if limit <= 0 {
		return
	}
	debug.SetMemoryLimit(limit)
	log.Info("memory limit", "bytes", limit, "from", "nine tenths of the memory of the machine or of its cgroup; GOMEMLIMIT overrides")
}
