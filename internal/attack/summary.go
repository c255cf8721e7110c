package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// leftOutOfMean are the attacks the geometric mean of a run's p99 ratios
// leaves out: the control (k), which measures the attacker's CPU and not
// the server, and idle-redial, a variant of idle-conns that would count
// (g) twice. They count when nothing else ran.
var leftOutOfMean = []string{"cpu-burn", "idle-redial"}

// meanLeavesOut returns the attacks of runs that the geometric mean of a
// run's p99 ratios leaves out: those of leftOutOfMean that ran, unless
// nothing else did, when it leaves out none.
func meanLeavesOut(runs []*runResults) []string {
	var left []string
	others := false
	for _, run := range runs {
		for _, r := range run.Results {
			switch {
			case !slices.Contains(leftOutOfMean, r.Name):
				others = true
			case !slices.Contains(left, r.Name):
				left = append(left, r.Name)
			}
		}
	}
	if !others {
		return nil
	}
	return left
}

// geomean is the geometric mean of the p99 ratios of results, but for the
// attacks named in leave and those without a ratio; 0 if none is left.
func geomean(results []*result, leave []string) float64 {
	sum, n := 0.0, 0
	for _, r := range results {
		if r.P99Ratio > 0 && !slices.Contains(leave, r.Name) {
			sum += math.Log(r.P99Ratio)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return math.Exp(sum / float64(n))
}

// medianRun returns the index in means of the median run, by its mean: of
// an even number, the lower of the middle two; of equal means, the earlier
// run. A mean of 0 (a run without a ratio) is never the median unless every
// mean is 0, when the median run is the first.
func medianRun(means []float64) int {
	var idx []int
	for i, m := range means {
		if m > 0 {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return 0
	}
	slices.SortStableFunc(idx, func(i, j int) int { return cmp.Compare(means[i], means[j]) })
	return idx[(len(idx)-1)/2]
}

// median is the median of the values of xs but 0, which stands for none:
// of an even number of values, the mean of the middle two; 0 if none.
func median(xs []float64) float64 {
	var v []float64
	for _, x := range xs {
		if x > 0 {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// attackRuns is one attack's figures in each of several runs of one build.
type attackRuns struct {
	name, label string
	ratios      []float64 // its p99 ratio in each run; 0 for none
	p99s        []float64 // the bystander's p99 during it, in ms; 0 for no delivery
}

// byAttack gathers each attack's figures over runs, in the order in which
// the attacks first ran; a run without an attack counts 0 for it.
func byAttack(runs []*runResults) []*attackRuns {
	var out []*attackRuns
	for i, run := range runs {
		for _, r := range run.Results {
			j := slices.IndexFunc(out, func(a *attackRuns) bool { return a.name == r.Name })
			if j < 0 {
				j = len(out)
				out = append(out, &attackRuns{name: r.Name, label: r.Label, ratios: make([]float64, len(runs)), p99s: make([]float64, len(runs))})
			}
			out[j].ratios[i] = r.P99Ratio
			if r.Attack.Delivered > 0 {
				out[j].p99s[i] = r.Attack.P99MS
			}
		}
	}
	return out
}

// ofBuild returns the runs of build b.
func ofBuild(runs []*runResults, b int) []*runResults {
	var out []*runResults
	for _, r := range runs {
		if r.build == b {
			out = append(out, r)
		}
	}
	return out
}

// figures formats xs, each with format, "–" for 0.
func figures(xs []float64, format string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = figure(x, format)
	}
	return strings.Join(s, ", ")
}

// figure formats x with format, or "–" for 0.
func figure(x float64, format string) string {
	if x == 0 {
		return "–"
	}
	return fmt.Sprintf(format, x)
}

const (
	ratioFormat = "%.1f×"
	msFormat    = "%.1f"
	meanFormat  = "%.2f"
)

// medianRunOf finds the median run of runs, those of one build, and says
// which it was, by what, and every run's mean; leave is what the means
// leave out (meanLeavesOut). It returns the median run's index, every
// run's mean, and "run 2 of 3, the median by ... (the means of runs 1 to
// 3: ...)".
func medianRunOf(runs []*runResults, leave []string) (int, []float64, string) {
	means := make([]float64, len(runs))
	for i, run := range runs {
		means[i] = geomean(run.Results, leave)
	}
	m := medianRun(means)
	by := "the geometric mean of its p99 ratios"
	if len(leave) > 0 {
		by += ", leaving out " + strings.Join(leave, " and ")
	}
	list := "its mean: " + figure(means[0], meanFormat)
	if len(runs) > 1 {
		list = fmt.Sprintf("the means of runs 1 to %d: %s", len(runs), figures(means, meanFormat))
	}
	return m, means, fmt.Sprintf("run %d of %d, the median by %s (%s)", runs[m].Run, len(runs), by, list)
}

// writeReport prints runs of builds: for a single run of one build, its
// table alone, as before --runs and --against; for several runs of one,
// writeRuns; for two builds, writeAgainst. It reports whether it was a
// single run of one build.
func writeReport(w io.Writer, runs []*runResults, builds []string, cfg *config) (single bool) {
	switch {
	case cfg.runs == 1 && len(builds) == 1:
		writeTable(w, runs[0].Results, cfg)
		return true
	case len(builds) == 1:
		writeRuns(w, runs, cfg)
	default:
		writeAgainst(w, runs, builds, cfg)
	}
	return false
}

// writeRuns prints runs of one build: the median run's table, which run
// it was with every run's geometric mean, and a line for each attack with
// its p99 ratio and the bystander's p99 during it in every run, and their
// medians.
func writeRuns(w io.Writer, runs []*runResults, cfg *config) {
	m, _, which := medianRunOf(runs, meanLeavesOut(runs))
	writeTable(w, runs[m].Results, cfg)
	fmt.Fprintf(w, "\nThe table is %s. The p99 ratios and the bystander's attack p99s of every run:\n\n", which)
	fmt.Fprintln(w, "| Attack | p99 ratios | Median | Attack p99s (ms) | Median |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, a := range byAttack(runs) {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", a.label,
			figures(a.ratios, ratioFormat), figure(median(a.ratios), ratioFormat),
			figures(a.p99s, msFormat), figure(median(a.p99s), msFormat))
	}
}

// writeAgainst prints the alternated runs of two builds, A (builds[0])
// and B: each build's median run's table, then for each attack both
// builds' p99 ratios and attack p99s side by side, with their medians, and
// last the builds' geometric means.
func writeAgainst(w io.Writer, runs []*runResults, builds []string, cfg *config) {
	leave := meanLeavesOut(runs)
	rounds := "In each of the " + fmt.Sprint(len(runs)/2) + " rounds"
	if len(runs) == 2 {
		rounds = "In the one round"
	}
	fmt.Fprintf(w, "\nA is %s; B is %s. %s, each attack ran against A, then against B.\n", builds[0], builds[1], rounds)
	var per [2][]*attackRuns
	var means [2][]float64
	for b := range per {
		mine := ofBuild(runs, b)
		per[b] = byAttack(mine)
		var m int
		var which string
		m, means[b], which = medianRunOf(mine, leave)
		fmt.Fprintf(w, "\n**%s** (%s): the table is %s.\n", buildName(b), builds[b], which)
		writeTable(w, mine[m].Results, cfg)
	}

	fmt.Fprintf(w, "\nEach attack's p99 ratios and the bystander's attack p99s, A's and B's, run by run, and their medians:\n\n")
	fmt.Fprintln(w, "| Attack | p99 ratios, A | p99 ratios, B | Median ratio, A → B | Attack p99s (ms), A | Attack p99s (ms), B | Median attack p99 (ms), A → B |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, a := range per[0] {
		o := &attackRuns{}
		if j := slices.IndexFunc(per[1], func(o *attackRuns) bool { return o.name == a.name }); j >= 0 {
			o = per[1][j]
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s → %s | %s | %s | %s → %s |\n", a.label,
			figures(a.ratios, ratioFormat), figures(o.ratios, ratioFormat),
			figure(median(a.ratios), ratioFormat), figure(median(o.ratios), ratioFormat),
			figures(a.p99s, msFormat), figures(o.p99s, msFormat),
			figure(median(a.p99s), msFormat), figure(median(o.p99s), msFormat))
	}
	what := "geometric mean of the p99 ratios"
	if len(leave) > 0 {
		what += " (leaving out " + strings.Join(leave, " and ") + ")"
	}
	fmt.Fprintf(w, "| %s | %s | %s | %s → %s | | | |\n", what,
		figures(means[0], meanFormat), figures(means[1], meanFormat),
		figure(median(means[0]), meanFormat), figure(median(means[1]), meanFormat))
}
