package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// On a real deployment the attacker is another machine; here it shares the
// server's cores, and what it spends of them would count against the
// server. So each attack's child process runs pinned to one core, through
// taskset, which sets the affinity before the child starts and so covers
// every thread it will have. The server and the bystander are not pinned:
// they may use every core, the attacker's included. This is a fairer
// measurement, not a defence of the server.

// pinning is how the attacker's process is pinned.
type pinning struct {
	taskset string // the taskset binary; "" when not pinned
	cpu     int    // the core
	allowed string // the cores this process may use, as /proc lists them
	why     string // when not pinned, why not
}

// pinAttacker finds taskset and the last core this process may use, for
// the attacker.
func pinAttacker(enabled bool) pinning {
	if !enabled {
		return pinning{why: "--pin-attacker=false"}
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return pinning{why: "no taskset on PATH"}
	}
	allowed, cpu, err := lastAllowedCPU()
	if err != nil {
		return pinning{why: err.Error()}
	}
	if !strings.ContainsAny(allowed, ",-") {
		return pinning{why: "this process may use only CPU " + allowed}
	}
	return pinning{taskset: ts, cpu: cpu, allowed: allowed}
}

// lastAllowedCPU reads the cores this process may use from /proc/self/status
// ("Cpus_allowed_list: 0-3,8") and returns the list and its last core.
func lastAllowedCPU() (string, int, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "", 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		list, ok := strings.CutPrefix(line, "Cpus_allowed_list:")
		if !ok {
			continue
		}
		list = strings.TrimSpace(list)
		last := list[max(strings.LastIndexAny(list, ",-")+1, 0):]
		cpu, err := strconv.Atoi(last)
		return list, cpu, err
	}
	return "", 0, errors.New("no Cpus_allowed_list in /proc/self/status")
}

// command returns the command that runs self (with no arguments) pinned.
func (p pinning) command(self string) (string, []string) {
	if p.taskset == "" {
		return self, nil
	}
	return p.taskset, []string{"--cpu-list", strconv.Itoa(p.cpu), self}
}

// String says what was pinned, for the table.
func (p pinning) String() string {
	if p.taskset == "" {
		return fmt.Sprintf("Nothing was pinned (%s): the attacker, the server and the bystander shared every core.", p.why)
	}
	return fmt.Sprintf("The attacker's process was pinned to CPU %d (taskset) of CPUs %s; the server and the bystander were not pinned.", p.cpu, p.allowed)
}
