package serveconfig

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// DefaultRetainedBytes is the default of --max-retained-bytes: half of the
// memory this process may use, so that retained messages cannot push the
// server into the kernel's OOM killer however many rooms an attacker fills.
// The limit is the cgroup's when there is one (a container's), else the
// machine's.
func DefaultRetainedBytes() int64 {
	limit := Memory()
	if limit <= 0 {
		return 1 << 30
	}
	return limit / 2
}

// DefaultMemoryLimit is the soft memory limit serve gives the Go runtime
// when GOMEMLIMIT does not set one: nine tenths of Memory, or 0 (none)
// when that is unknown. Retained messages are live data, up to
// DefaultRetainedBytes, half of Memory; under GOGC's default of 100 the
// heap may grow to twice its live bytes before the collector runs, which
// is all the memory there is and more. With the limit, the collector runs
// sooner as the heap nears it instead.
func DefaultMemoryLimit() int64 {
	return Memory() / 10 * 9
}

// Memory is the memory this process may use: its cgroup's limit when
// there is one (a container's), else the machine's; 0 when unknown.
func Memory() int64 {
	limit := machineMemory()
	if c := cgroupMemory(); c > 0 && (limit == 0 || c < limit) {
		limit = c
	}
	return max(limit, 0)
}

// cgroupMemory is the memory limit of this process's cgroup (v2, then v1),
// or 0 when there is none or it is unlimited.
func cgroupMemory() int64 {
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if b, err := os.ReadFile(path); err == nil {
			return parseCgroupLimit(b)
		}
	}
	return 0
}

// parseCgroupLimit reads a cgroup memory limit file: a number of bytes, or
// "max" (v2); v1 writes a huge number for no limit.
func parseCgroupLimit(b []byte) int64 {
	n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil || n <= 0 || n >= 1<<60 {
		return 0
	}
	return n
}

// machineMemory is MemTotal from /proc/meminfo, or 0.
func machineMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	return parseMemTotal(bufio.NewScanner(f))
}

func parseMemTotal(sc *bufio.Scanner) int64 {
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil || kb <= 0 {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
