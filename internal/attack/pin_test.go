package main

import (
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseCPUList(t *testing.T) {
	for list, want := range map[string][]int{"0": {0}, "0-1": {0, 1}, "0-3,8": {0, 1, 2, 3, 8}, "2,4-5": {2, 4, 5}} {
		got, err := parseCPUList(list)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseCPUList(%q) = %v, %v; want %v", list, got, err, want)
		}
	}
	for _, bad := range []string{"", "a", "3-1", "0-"} {
		if got, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q) = %v, want an error", bad, got)
		}
	}
}

// Under isolated, the attacker gets the last core and the server the
// others, through taskset; under shared, only the attacker is pinned.
func TestLayouts(t *testing.T) {
	iso, err := newPinning(layoutIsolated)
	if err != nil {
		t.Fatal(err)
	}
	if iso.taskset == "" {
		t.Skipf("nothing to pin: %s", iso.why)
	}
	name, args := iso.serverCommand("/bin/roomcast", []string{"serve"})
	want := []string{"--cpu-list", cpuList(iso.others), "/bin/roomcast", "serve"}
	if name != iso.taskset || !slices.Equal(args, want) || slices.Contains(iso.others, iso.attacker) {
		t.Errorf("isolated: server runs %s %q with the attacker on %d", name, args, iso.attacker)
	}
	if name, args := iso.command("/bin/self"); name != iso.taskset || !slices.Equal(args, []string{"--cpu-list", strconv.Itoa(iso.attacker), "/bin/self"}) {
		t.Errorf("isolated: the attacker runs %s %q", name, args)
	}
	shared, err := newPinning(layoutShared)
	if err != nil {
		t.Fatal(err)
	}
	if name, args := shared.serverCommand("/bin/roomcast", []string{"serve"}); name != "/bin/roomcast" || !slices.Equal(args, []string{"serve"}) {
		t.Errorf("shared: server runs %s %q, want it unpinned", name, args)
	}
	if _, err := newPinning("sideways"); err == nil {
		t.Error("newPinning accepted an unknown layout")
	}
}

// pinSelf pins every thread of the process, including those started after
// it, and its undo gives them every core back.
func TestPinSelf(t *testing.T) {
	p, err := newPinning(layoutIsolated)
	if err != nil {
		t.Fatal(err)
	}
	if p.taskset == "" {
		t.Skipf("nothing to pin: %s", p.why)
	}
	_, all, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	undo, err := p.pinSelf()
	if err != nil {
		t.Fatal(err)
	}
	undone := false
	t.Cleanup(func() {
		if !undone {
			undo()
		}
	})
	if got := runtime.GOMAXPROCS(0); got != len(p.others) {
		t.Errorf("GOMAXPROCS is %d while pinned to %v", got, p.others)
	}
	locked := make(chan struct{}) // a thread of its own, started after pinning
	release := make(chan struct{})
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		close(locked)
		<-release
	}()
	<-locked
	checkThreads(t, p.others)
	close(release)
	released = true
	undo()
	undone = true
	checkThreads(t, all)
}

// checkThreads checks that every thread of the process may use exactly cpus.
func checkThreads(t *testing.T, cpus []int) {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err != nil {
			continue // exited
		}
		var got []int
		for c := range 1024 {
			if set.IsSet(c) {
				got = append(got, c)
			}
		}
		if !slices.Equal(got, cpus) {
			t.Errorf("thread %d may use CPUs %v, want %v", tid, got, cpus)
		}
	}
	if t.Failed() {
		b, _ := os.ReadFile("/proc/self/status")
		t.Log(strings.TrimSpace(string(b)))
	}
}
