package bench

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
)

// writeSyscalls is how many write system calls the process has made, from
// /proc/self/io (Linux); false where that is not available.
func writeSyscalls() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("syscw:")); ok {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// residentBytes is the process's resident set size now, VmRSS from
// /proc/self/status (Linux); false where that is not available.
func residentBytes() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	return parseVmRSS(b)
}

// parseVmRSS reads the VmRSS line of a /proc/PID/status file, in kB.
func parseVmRSS(status []byte) (uint64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:")); ok {
			f := bytes.Fields(v)
			if len(f) != 2 || string(f[1]) != "kB" {
				return 0, false
			}
			n, err := strconv.ParseUint(string(f[0]), 10, 64)
			return n << 10, err == nil
		}
	}
	return 0, false
}
