package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// How long a process's threads waited for a core, runnable but not
// running, is the kernel's count (schedstat): it tells a delay that is
// the CPU being shared, with the attacker or anything else on the machine,
// from one that is the process's own work.

// runqWait is the time every thread of process pid has spent runnable on
// a run queue, waiting for a core, so far: the sum of the second field of
// /proc/PID/task/*/schedstat. Threads that have exited are not counted.
func runqWait(pid int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue // exited
		}
		f := bytes.Fields(b)
		if len(f) < 2 {
			return 0, fmt.Errorf("unexpected %s/%s/schedstat: %q", dir, t.Name(), b)
		}
		ns, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil {
			return 0, err
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// phaseRates is a process's run-queue wait in the baseline and during the
// attack, in milliseconds a second; -1 when it could not be read.
type phaseRates struct {
	Baseline float64 `json:"baseline"`
	Attack   float64 `json:"attack"`
}

func (p phaseRates) String() string {
	if p.Baseline < 0 || p.Attack < 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f → %.0f ms", p.Baseline, p.Attack)
}

// waits samples the run-queue wait of the server and of this process at
// the start of the baseline, of the attack (mark) and at its end (rates).
type waits struct {
	pids  [2]int // the server's and this process's
	at    [3]time.Time
	total [3][2]time.Duration
	err   bool
	n     int
}

func newWaits(server int) *waits {
	w := &waits{pids: [2]int{server, os.Getpid()}}
	w.sample()
	return w
}

func (w *waits) sample() {
	w.at[w.n] = time.Now()
	for i, pid := range w.pids {
		d, err := runqWait(pid)
		w.err = w.err || err != nil
		w.total[w.n][i] = d
	}
	w.n++
}

// mark samples at the start of the attack.
func (w *waits) mark() { w.sample() }

// rates samples at the end of the attack and returns the server's rates
// and this process's.
func (w *waits) rates() (server, self phaseRates) {
	w.sample()
	rate := func(i, from int) float64 {
		if w.err {
			return -1
		}
		d := w.total[from+1][i] - w.total[from][i]
		return float64(d) / 1e6 / w.at[from+1].Sub(w.at[from]).Seconds()
	}
	return phaseRates{rate(0, 0), rate(0, 1)}, phaseRates{rate(1, 0), rate(1, 1)}
}

// loadAvg is the machine's load average over the last minute, or "" if
// it cannot be read.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := bytes.Fields(b)
	if len(f) == 0 {
		return ""
	}
	return string(f[0])
}
