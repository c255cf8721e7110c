package serveconfig

import (
	"bufio"
	"bytes"
	"os"
	"path"
	"path/filepath"
	"slices"
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

// cgroupMemory is the memory limit of this process's cgroup (v2 and v1),
// or 0 when there is none or it is unlimited.
func cgroupMemory() int64 {
	self, _ := os.ReadFile("/proc/self/cgroup")
	return cgroupMemoryAt("/sys/fs/cgroup", self)
}

// cgroupMemoryAt is the smallest memory limit of the cgroups that self (the
// content of /proc/self/cgroup) names under root, and of their parents: a
// process is held to every limit above it, and its own cgroup is often a
// nested one (a systemd unit, a container sharing the host's cgroup
// namespace), whose limit the files at root do not show. It is 0 when no
// limit is set.
func cgroupMemoryAt(root string, self []byte) int64 {
	v2, v1 := "/", "/"
	for line := range strings.Lines(string(self)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			v1 = parts[2]
		}
	}
	var limit int64
	walk := func(dir, file, cg string) {
		for p := path.Clean("/" + cg); ; p = path.Dir(p) {
			if b, err := os.ReadFile(filepath.Join(root, dir, p, file)); err == nil {
				if n := parseCgroupLimit(b); n > 0 && (limit == 0 || n < limit) {
					limit = n
				}
			}
			if p == "/" {
				return
			}
		}
	}
	walk("", "memory.max", v2)
	walk("unified", "memory.max", v2) // v2 beside v1 (hybrid)
	walk("memory", "memory.limit_in_bytes", v1)
	return limit
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
