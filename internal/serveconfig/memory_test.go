package serveconfig

import (
	"bufio"
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
