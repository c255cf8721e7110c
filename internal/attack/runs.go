package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
)

// On a shared machine one run's p99 ratio is noise. --runs runs the chosen
// attacks several times, and --against alternates two builds, attack by
// attack, so that both see the same stretches of the machine's load: in
// each round, each attack runs against the first build, then against the
// second, before the next attack. summary.go reduces the runs to the median
// run and each attack's figures over all of them.

// runResults is one run: the chosen attacks, once each, against one build.
type runResults struct {
	Run     int       `json:"run"`   // its round, from 1
	Build   string    `json:"build"` // the roomcast binary's path, or where it was built
	Results []*result `json:"results"`

	build int // its build's index in the builds of runRounds: 0, or 1 for --against
}

// measureFunc measures attack a against build b, an index into the builds
// of runRounds.
type measureFunc func(b int, a *attack) *result

// runRounds runs cfg.runs rounds of cfg.attacks, in each round each attack
// against every one of builds in turn, and returns the runs: round by
// round, and within a round, build by build. Once ctx is done it stops
// after the measure in progress and leaves out the round it interrupted,
// unless that was the first (so that a single run keeps what it measured,
// as before --runs).
func runRounds(ctx context.Context, cfg *config, builds []string, measure measureFunc, logf func(string, ...any)) []*runResults {
	var runs []*runResults
	for round := 1; round <= cfg.runs; round++ {
		these := make([]*runResults, len(builds))
		for b, label := range builds {
			these[b] = &runResults{Run: round, Build: label, build: b}
		}
		runs = append(runs, these...)
		for _, a := range cfg.attacks {
			logf("%s%s: %s", roundPrefix(cfg, builds, round, -1), a.label, a.about)
			for b := range builds {
				r := measure(b, a)
				these[b].Results = append(these[b].Results, r)
				logf("%s%s: %s", roundPrefix(cfg, builds, round, b), a.label, r.line())
				if ctx.Err() != nil {
					break
				}
			}
			if ctx.Err() != nil {
				break
			}
		}
		if ctx.Err() != nil {
			if round > 1 {
				logf("interrupted: run %d left out", round)
				runs = runs[:len(runs)-len(builds)]
			}
			break
		}
	}
	return runs
}

// roundPrefix begins a progress line of round, and of build b unless b < 0:
// "run 2 of 5, B: "; nothing for a single run of one build.
func roundPrefix(cfg *config, builds []string, round, b int) string {
	p := ""
	if cfg.runs > 1 || len(builds) > 1 {
		p = fmt.Sprintf("run %d of %d", round, cfg.runs)
	}
	if b >= 0 && len(builds) > 1 {
		p += ", " + buildName(b)
	}
	if p == "" {
		return ""
	}
	return p + ": "
}

// buildName names build b in the summaries: A for the first, B for
// --against.
func buildName(b int) string { return string(rune('A' + b)) }

// writeJSON writes runs to path as JSON: for a single run of one build,
// its results alone, a list, as before --runs and --against; otherwise the
// list of runs, each with its round, its build and its results.
func writeJSON(path string, runs []*runResults, single bool) error {
	var v any = runs
	if single {
		v = runs[0].Results
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
