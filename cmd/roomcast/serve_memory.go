package main

import (
	"log/slog"
	"math"
	"runtime/debug"
)

// setMemoryLimit gives the Go runtime serve's default soft memory limit,
// limit bytes (serveconfig.DefaultMemoryLimit), unless the environment
// sets one with GOMEMLIMIT, which the runtime has applied already, or
// limit is 0 (unknown). It logs the limit in force, and warns when
// retained, the --max-retained-bytes in force, takes more than three
// quarters of it: retained messages are live data, and a heap held near its
// limit by them makes the collector run nearly all the time. GOGC still
// applies below the limit, and GOGC=off with GOMEMLIMIT is the operator's
// to set.
func setMemoryLimit(log *slog.Logger, getenv func(string) string, limit, retained int64) {
	if v := getenv("GOMEMLIMIT"); v != "" {
		limit = debug.SetMemoryLimit(-1)
		log.Info("memory limit", "bytes", limit, "from", "GOMEMLIMIT")
	} else if limit > 0 {
		debug.SetMemoryLimit(limit)
		log.Info("memory limit", "bytes", limit, "from", "nine tenths of the memory of the machine or of its cgroup; GOMEMLIMIT overrides")
	}
	if limit > 0 && limit < math.MaxInt64 && retained > limit/4*3 {
		log.Warn("--max-retained-bytes is more than three quarters of the memory limit: with that much retained, the collector runs nearly all the time",
			"max_retained_bytes", retained, "memory_limit", limit)
	}
}
