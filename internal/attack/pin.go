package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// On a real deployment the attacker is another machine; here it shares the
// server's cores, and what it spends of them would count against the
// server. So each attack's child process runs pinned to one core, the last
// this process may use, through taskset, which sets the affinity before the
// child starts and so covers every thread it will have. The layout says
// where the server and the bystander run:
//
//   - isolated: on the other cores, never the attacker's. The server is
//     started through taskset too (its GOMAXPROCS follows its affinity), and
//     this process, whose goroutines are the bystander, pins every thread
//     of its own for the run. The server has one core fewer than the
//     machine: harsher for its capacity, but no delay of the bystander's
//     comes from the kernel sharing a core between it and the attacker.
//   - shared: not pinned; they may use every core, the attacker's included,
//     and wait for it whenever the kernel gives the attacker's core to it.
//   - none: nothing is pinned.
//
// Either way this is a fairer measurement, not a defence of the server.

// The layouts, for --layout.
const (
	layoutIsolated = "isolated"
	layoutShared   = "shared"
	layoutNone     = "none"
)

// pinning is where the attacker, the server and the bystander run.
type pinning struct {
	layout   string
	taskset  string // the taskset binary; "" when nothing is pinned
	attacker int    // the attacker's core
	others   []int  // under isolated, the server's and the bystander's cores
	allowed  string // the cores this process may use, as /proc lists them
	why      string // when nothing is pinned, why not
}

// newPinning finds taskset and the cores this process may use, and places
// the attacker on the last of them, the server and the bystander as layout
// says.
func newPinning(layout string) (pinning, error) {
	switch layout {
	case layoutIsolated, layoutShared:
	case layoutNone:
		return pinning{layout: layout, why: "--layout none"}, nil
	default:
		return pinning{}, fmt.Errorf("no layout %q; the layouts are isolated, shared and none", layout)
	}
	none := func(why string) (pinning, error) { return pinning{layout: layoutNone, why: why}, nil }
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return none("no taskset on PATH")
	}
	allowed, cpus, err := allowedCPUs()
	if err != nil {
		return none(err.Error())
	}
	if len(cpus) < 2 {
		return none("this process may use only CPU " + allowed)
	}
	p := pinning{layout: layout, taskset: ts, attacker: cpus[len(cpus)-1], allowed: allowed}
	if layout == layoutIsolated {
		p.others = cpus[:len(cpus)-1]
	}
	return p, nil
}

// allowedCPUs reads the cores this process may use from /proc/self/status
// ("Cpus_allowed_list: 0-3,8"), as listed there and one by one, ascending.
func allowedCPUs() (string, []int, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "", nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		list, ok := strings.CutPrefix(line, "Cpus_allowed_list:")
		if !ok {
			continue
		}
		list = strings.TrimSpace(list)
		cpus, err := parseCPUList(list)
		return list, cpus, err
	}
	return "", nil, errors.New("no Cpus_allowed_list in /proc/self/status")
}

// parseCPUList parses a list of cores such as "0-3,8".
func parseCPUList(list string) ([]int, error) {
	var cpus []int
	for _, r := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || b < a {
			return nil, fmt.Errorf("unexpected list of cores %q", list)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// cpuList formats cores as taskset takes them: "0,1,2".
func cpuList(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

// command returns the command that runs self (with no arguments) pinned
// to the attacker's core.
func (p pinning) command(self string) (string, []string) {
	if p.taskset == "" {
		return self, nil
	}
	return p.taskset, []string{"--cpu-list", strconv.Itoa(p.attacker), self}
}

// serverCommand returns the command that runs bin with args where the
// server belongs.
func (p pinning) serverCommand(bin string, args []string) (string, []string) {
	if len(p.others) == 0 {
		return bin, args
	}
	return p.taskset, append([]string{"--cpu-list", cpuList(p.others), bin}, args...)
}

// pinSelf pins every thread of this process (the bystander's) to the
// server's cores under isolated, and returns what undoes it; GOMAXPROCS
// follows for the run. Threads started later inherit the affinity of the
// thread that starts them, so pinning every existing thread suffices; the
// loop repeats until a pass finds none left to pin.
func (p pinning) pinSelf() (undo func(), err error) {
	if len(p.others) == 0 {
		return func() {}, nil
	}
	var before, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &before); err != nil {
		return nil, err
	}
	set.Zero()
	for _, c := range p.others {
		set.Set(c)
	}
	procs := runtime.GOMAXPROCS(len(p.others))
	undo = func() {
		setAllThreads(&before)
		runtime.GOMAXPROCS(procs)
	}
	if err := setAllThreads(&set); err != nil {
		undo()
		return nil, fmt.Errorf("pinning the bystander: %w", err)
	}
	return undo, nil
}

// setAllThreads sets the affinity of every thread of this process.
func setAllThreads(set *unix.CPUSet) error {
	for pass := 0; pass < 100; pass++ {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		changed := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			var cur unix.CPUSet
			if err := unix.SchedGetaffinity(tid, &cur); err != nil {
				continue // the thread has exited
			}
			if cur == *set {
				continue
			}
			if err := unix.SchedSetaffinity(tid, set); err != nil && !errors.Is(err, unix.ESRCH) {
				return err
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return errors.New("threads kept appearing")
}

// String says what was pinned, for the table.
func (p pinning) String() string {
	switch {
	case p.taskset == "":
		return fmt.Sprintf("Layout none (%s): the attacker, the server and the bystander shared every core.", p.why)
	case len(p.others) > 0:
		return fmt.Sprintf("Layout isolated: the attacker's process was pinned to CPU %d (taskset) of CPUs %s, the server and the bystander to CPU %s, so the attacker shared no core with them.", p.attacker, p.allowed, cpuList(p.others))
	default:
		return fmt.Sprintf("Layout shared: the attacker's process was pinned to CPU %d (taskset) of CPUs %s; the server and the bystander were not pinned and shared its core.", p.attacker, p.allowed)
	}
}
