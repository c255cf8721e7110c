package main

import (
	"bytes"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/internal/serveconfig"
)

// serve gives the runtime a soft memory limit below the memory there is,
// so that retained messages (up to half of it) and the garbage beside them
// cannot grow the heap past it under GOGC's default; GOMEMLIMIT, which the
// runtime has applied already, wins.
func TestServeSetsAMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	noEnv := func(string) string { return "" }

	setMemoryLimit(log, noEnv, 3<<30, 1<<30)
	if got := debug.SetMemoryLimit(-1); got != 3<<30 {
		t.Errorf("memory limit %d, want %d", got, 3<<30)
	}
	if !strings.Contains(logs.String(), "bytes=3221225472") {
		t.Errorf("the limit was not logged: %s", &logs)
	}

	debug.SetMemoryLimit(1 << 40) // as GOMEMLIMIT=1TiB would have
	setMemoryLimit(log, func(k string) string {
		if k == "GOMEMLIMIT" {
			return "1TiB"
		}
		return ""
	}, 3<<30, 1<<30)
	if got := debug.SetMemoryLimit(-1); got != 1<<40 {
		t.Errorf("with GOMEMLIMIT set, the limit became %d", got)
	}

	debug.SetMemoryLimit(before)
	setMemoryLimit(log, noEnv, 0, 1<<30) // memory unknown: no limit
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("with the memory unknown, the limit became %d", got)
	}

	if strings.Contains(logs.String(), "WARN") {
		t.Errorf("warned with a quarter of the memory limit retained: %s", &logs)
	}
	logs.Reset()
	setMemoryLimit(log, noEnv, 3<<30, 3<<30-1)
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "max_retained_bytes=3221225471") {
		t.Errorf("no warning with nearly all of the memory limit retained: %s", &logs)
	}

	if m, l := serveconfig.Memory(), serveconfig.DefaultMemoryLimit(); m > 0 && (l <= serveconfig.DefaultRetainedBytes() || l >= m) {
		t.Errorf("default limit %d: not between the retained budget %d and the memory %d", l, serveconfig.DefaultRetainedBytes(), m)
	}
}
