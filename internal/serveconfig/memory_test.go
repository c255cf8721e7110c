package serveconfig

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMemoryLimitsAreRead(t *testing.T) {
	for in, want := range map[string]int64{
		"1073741824\n":          1 << 30,
		"max\n":                 0,
		"9223372036854771712\n": 0, // cgroup v1's "no limit"
		"":                      0,
		"-1":                    0,
	} {
		if got := parseCgroupLimit([]byte(in)); got != want {
			t.Errorf("cgroup %q: %d, want %d", in, got, want)
		}
	}
	meminfo := "MemFree:  100 kB\nMemTotal:       24684084 kB\n"
	if got := parseMemTotal(bufio.NewScanner(strings.NewReader(meminfo))); got != 24684084<<10 {
		t.Errorf("MemTotal: %d", got)
	}
	if got := DefaultRetainedBytes(); got <= 0 {
		t.Errorf("default budget %d on this machine", got)
	}
}

// A nested cgroup's limit counts, and so does a parent's lower one, under
// v2, v1 and both; files that are missing or unlimited are skipped.
func TestNestedCgroupLimitsAreRead(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("memory.max", "max\n")
	write("system.slice/memory.max", "max\n")
	write("system.slice/roomcast.service/memory.max", "536870912\n")
	write("memory/memory.limit_in_bytes", "9223372036854771712\n")
	write("memory/docker/memory.limit_in_bytes", "268435456\n")
	write("memory/docker/abc/memory.limit_in_bytes", "1073741824\n")
	for _, tc := range []struct {
		self string
		want int64
	}{
		{"0::/system.slice/roomcast.service\n", 512 << 20},
		{"4:memory:/docker/abc\n0::/\n", 256 << 20}, // the parent's limit is lower
		{"4:cpu,memory:/docker/abc\n", 256 << 20},
		{"0::/gone/elsewhere\n", 0}, // missing below root, unlimited at it
		{"", 0},
		{"garbage", 0},
	} {
		if got := cgroupMemoryAt(root, []byte(tc.self)); got != tc.want {
			t.Errorf("cgroup %q: %d, want %d", tc.self, got, tc.want)
		}
	}
}
