package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// res fabricates attack name's result: its p99 ratio and the bystander's
// p99 during it, in ms; a p99 of 0 is no delivery.
func res(name string, ratio, p99 float64) *result {
	r := &result{Name: name, Label: "(" + name + ")", P99Ratio: ratio}
	if p99 > 0 {
		r.Attack = latency{Published: 10, Delivered: 10, P99MS: p99}
		r.Baseline = latency{Published: 10, Delivered: 10, P99MS: 1}
	}
	return r
}

// fabricated returns runs of one build, run i holding results[i].
func fabricated(results ...[]*result) []*runResults {
	runs := make([]*runResults, len(results))
	for i, rs := range results {
		runs[i] = &runResults{Run: i + 1, Build: "A", Results: rs}
	}
	return runs
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestGeomean(t *testing.T) {
	for _, tc := range []struct {
		name    string
		results []*result
		leave   []string
		want    float64
	}{
		{"one", []*result{res("a", 2, 2)}, nil, 2},
		{"two", []*result{res("a", 2, 2), res("b", 8, 8)}, nil, 4},
		{"left out", []*result{res("a", 2, 2), res("cpu-burn", 100, 1), res("b", 8, 8), res("idle-redial", 50, 1)}, leftOutOfMean, 4},
		{"kept when not left out", []*result{res("a", 1, 1), res("cpu-burn", 4, 4)}, nil, 2},
		{"no ratio skipped", []*result{res("a", 3, 3), res("b", 0, 0)}, nil, 3},
		{"none", []*result{res("cpu-burn", 2, 2)}, leftOutOfMean, 0},
		{"empty", nil, nil, 0},
	} {
		if got := geomean(tc.results, tc.leave); !near(got, tc.want) {
			t.Errorf("%s: geomean = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The mean leaves out the control and idle-redial, but only those that
// ran, and neither when nothing else ran.
func TestMeanLeavesOut(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  []string
	}{
		{[]string{"a", "cpu-burn", "b"}, []string{"cpu-burn"}},
		{[]string{"idle-redial", "a", "cpu-burn"}, []string{"idle-redial", "cpu-burn"}},
		{[]string{"a", "b"}, nil},
		{[]string{"cpu-burn"}, nil},
		{[]string{"cpu-burn", "idle-redial"}, nil},
	} {
		var rs []*result
		for _, n := range tc.names {
			rs = append(rs, res(n, 1, 1))
		}
		runs := fabricated(rs, rs)
		if got := meanLeavesOut(runs); !slices.Equal(got, tc.want) {
			t.Errorf("%v: meanLeavesOut = %v, want %v", tc.names, got, tc.want)
		}
	}
}

func TestMedianRun(t *testing.T) {
	for _, tc := range []struct {
		means []float64
		want  int
	}{
		{[]float64{1.5}, 0},
		{[]float64{1.57, 2.03, 2.14, 1.76, 2.07}, 1},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 3}, // even: the lower of the middle two, 2
		{[]float64{2, 1}, 1},
		{[]float64{2, 2, 2}, 1},    // equal: the earlier of the sorted order's middle
		{[]float64{0, 3, 0, 1}, 3}, // runs without a mean never count
		{[]float64{0, 0, 5, 0}, 2}, // the only one with a mean
		{[]float64{0, 0}, 0},       // none: the first
		{[]float64{1, 1, 1, 1}, 1}, // even and equal: the earlier middle
		{[]float64{9, 1, 9, 1}, 3}, // equal values keep run order
		{[]float64{1, 9, 1, 9}, 2}, // ditto
		{[]float64{1.2, 1.1, 1.3}, 0},
	} {
		if got := medianRun(tc.means); got != tc.want {
			t.Errorf("medianRun(%v) = %d, want %d", tc.means, got, tc.want)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{0, 0}, 0},
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{0, 5, 1, 0, 3}, 3}, // zeros are no value
		{[]float64{0, 2, 4}, 3},
	} {
		if got := median(tc.xs); !near(got, tc.want) {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
}

// byAttack lines up each attack's figures by run, in the order the attacks
// first ran, with 0 where a run lacks the attack or it had no delivery.
func TestByAttack(t *testing.T) {
	runs := fabricated(
		[]*result{res("a", 1.5, 3), res("b", 2, 4)},
		[]*result{res("a", 0, 0)},
		[]*result{res("c", 3, 6), res("a", 2.5, 5), res("b", 1, 2)},
	)
	got := byAttack(runs)
	want := []*attackRuns{
		{name: "a", label: "(a)", ratios: []float64{1.5, 0, 2.5}, p99s: []float64{3, 0, 5}},
		{name: "b", label: "(b)", ratios: []float64{2, 0, 1}, p99s: []float64{4, 0, 2}},
		{name: "c", label: "(c)", ratios: []float64{0, 0, 3}, p99s: []float64{0, 0, 6}},
	}
	if len(got) != len(want) {
		t.Fatalf("byAttack gave %d attacks, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.name != w.name || g.label != w.label || !slices.Equal(g.ratios, w.ratios) || !slices.Equal(g.p99s, w.p99s) {
			t.Errorf("attack %d = %+v, want %+v", i, *g, *w)
		}
	}
}

// runRounds runs each attack against A then B in each round, files each
// result under its run, and stops at once when interrupted, leaving out
// the round it interrupted unless it was the first.
func TestRunRounds(t *testing.T) {
	cfg := &config{runs: 3, attacks: []*attack{{name: "a", label: "(a)"}, {name: "b", label: "(b)"}}}
	builds := []string{"/bin/one", "/bin/two"}
	for _, tc := range []struct {
		name      string
		stopAfter int    // measures before ctx is cancelled; 0 for never
		want      string // the attacks and builds measured, in order
		runs      int
	}{
		{"whole", 0, "a0 a1 b0 b1 a0 a1 b0 b1 a0 a1 b0 b1", 6},
		{"first round interrupted", 3, "a0 a1 b0", 2},
		{"later round interrupted", 6, "a0 a1 b0 b1 a0 a1", 2},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		var order []string
		var logs bytes.Buffer
		logf := func(f string, a ...any) { fmt.Fprintf(&logs, f+"\n", a...) }
		runs := runRounds(ctx, cfg, builds, func(b int, a *attack) *result {
			order = append(order, fmt.Sprintf("%s%d", a.name, b))
			if len(order) == tc.stopAfter {
				cancel()
			}
			return res(a.name, float64(len(order)), 1)
		}, logf)
		cancel()
		if got := strings.Join(order, " "); got != tc.want {
			t.Errorf("%s: measured %s, want %s", tc.name, got, tc.want)
		}
		if len(runs) != tc.runs {
			t.Fatalf("%s: %d runs, want %d", tc.name, len(runs), tc.runs)
		}
		for i, run := range runs {
			if run.Run != i/2+1 || run.build != i%2 || run.Build != builds[i%2] {
				t.Errorf("%s: run %d is round %d of build %d (%s)", tc.name, i, run.Run, run.build, run.Build)
			}
			for j, r := range run.Results {
				// The measures alternate builds, so the nth result of a
				// run of build b is measure 2*(attacks*(round-1)+n)+b+1.
				if want := float64(2*(len(cfg.attacks)*(run.Run-1)+j) + run.build + 1); r.P99Ratio != want || r.Name != cfg.attacks[j].name {
					t.Errorf("%s: run %d's result %d is measure %v of %s, want %v of %s", tc.name, i, j, r.P99Ratio, r.Name, want, cfg.attacks[j].name)
				}
			}
		}
		if !strings.Contains(logs.String(), "run 1 of 3, B: (a): ") {
			t.Errorf("%s: the progress log does not say the run and the build:\n%s", tc.name, &logs)
		}
	}
}

// A single run of one build logs as before --runs, with no run or build.
func TestRunRoundsSingle(t *testing.T) {
	cfg := &config{runs: 1, attacks: []*attack{{name: "a", label: "(a)", about: "about a"}}}
	var logs bytes.Buffer
	logf := func(f string, a ...any) { fmt.Fprintf(&logs, f+"\n", a...) }
	runs := runRounds(context.Background(), cfg, []string{"x"}, func(int, *attack) *result { return res("a", 2, 2) }, logf)
	if len(runs) != 1 || len(runs[0].Results) != 1 {
		t.Fatalf("%d runs", len(runs))
	}
	if want := "(a): about a\n(a): p99 1.0 ms → 2.0 ms"; !strings.HasPrefix(logs.String(), want) {
		t.Errorf("log %q, want it to begin %q", &logs, want)
	}
}

func TestWriteRuns(t *testing.T) {
	runs := fabricated(
		[]*result{res("a", 1.5, 3), res("cpu-burn", 9, 9)},
		[]*result{res("a", 3, 6), res("cpu-burn", 0.5, 1)},
		[]*result{res("a", 2, 4), res("cpu-burn", 1, 2)},
	)
	var out bytes.Buffer
	writeRuns(&out, runs, &config{})
	got := out.String()
	t.Logf("\n%s", got)
	wantIn(t, got,
		"| (a) | 0.0 ms | 1.0 ms | 0.0 ms | 4.0 ms | 2.0× |", // the median run's table: run 3's
		"The table is run 3 of 3, the median by the geometric mean of its p99 ratios, leaving out cpu-burn (the means of runs 1 to 3: 1.50, 3.00, 2.00).",
		"| (a) | 1.5×, 3.0×, 2.0× | 2.0× | 3.0, 6.0, 4.0 | 4.0 |\n",
		"| (cpu-burn) | 9.0×, 0.5×, 1.0× | 1.0× | 9.0, 1.0, 2.0 | 2.0 |\n",
	)
	if strings.Count(got, "| Attack | Baseline p50") != 1 {
		t.Errorf("not one table of the median run")
	}
}

// With the control alone, its ratios make the mean; a run with no
// delivery shows a dash and counts for no median.
func TestWriteRunsControlOnly(t *testing.T) {
	runs := fabricated(
		[]*result{res("cpu-burn", 1.2, 2)},
		[]*result{res("cpu-burn", 0, 0)},
	)
	var out bytes.Buffer
	writeRuns(&out, runs, &config{})
	got := out.String()
	wantIn(t, got,
		"The table is run 1 of 2, the median by the geometric mean of its p99 ratios (the means of runs 1 to 2: 1.20, –).",
		"| (cpu-burn) | 1.2×, – | 1.2× | 2.0, – | 2.0 |\n",
	)
}

func TestWriteAgainst(t *testing.T) {
	var runs []*runResults
	for i, rs := range [][]*result{
		{res("a", 2, 4), res("cpu-burn", 1, 1)}, // round 1, A
		{res("a", 4, 8), res("cpu-burn", 2, 2)}, // round 1, B
		{res("a", 1, 2), res("cpu-burn", 1, 1)}, // round 2, A
		{res("a", 6, 12), res("cpu-burn", 1, 1)},
		{res("a", 3, 6), res("cpu-burn", 1, 1)},
		{res("a", 5, 10), res("cpu-burn", 1, 1)},
	} {
		runs = append(runs, &runResults{Run: i/2 + 1, Build: []string{"/a/roomcast", "/b/roomcast"}[i%2], build: i % 2, Results: rs})
	}
	var out bytes.Buffer
	writeAgainst(&out, runs, []string{"/a/roomcast", "/b/roomcast"}, &config{})
	got := out.String()
	t.Logf("\n%s", got)
	wantIn(t, got,
		"A is /a/roomcast; B is /b/roomcast. In each of the 3 rounds, each attack ran against A, then against B.",
		"**A** (/a/roomcast): the table is run 1 of 3, the median by the geometric mean of its p99 ratios, leaving out cpu-burn (the means of runs 1 to 3: 2.00, 1.00, 3.00).",
		"**B** (/b/roomcast): the table is run 3 of 3, the median by the geometric mean of its p99 ratios, leaving out cpu-burn (the means of runs 1 to 3: 4.00, 6.00, 5.00).",
		"| (a) | 2.0×, 1.0×, 3.0× | 4.0×, 6.0×, 5.0× | 2.0× → 5.0× | 4.0, 2.0, 6.0 | 8.0, 12.0, 10.0 | 4.0 → 10.0 |\n",
		"| (cpu-burn) | 1.0×, 1.0×, 1.0× | 2.0×, 1.0×, 1.0× | 1.0× → 1.0× |",
		"| geometric mean of the p99 ratios (leaving out cpu-burn) | 2.00, 1.00, 3.00 | 4.00, 6.00, 5.00 | 2.00 → 5.00 | | | |\n",
	)
	if strings.Count(got, "| Attack | Baseline p50") != 2 {
		t.Errorf("not one table of the median run for each build")
	}
}

// A single run of one build writes its results alone, as before --runs;
// otherwise the list of runs, each with its round and build.
func TestWriteJSON(t *testing.T) {
	dir := t.TempDir()
	runs := fabricated([]*result{res("a", 2, 4)}, []*result{res("a", 3, 6)})
	single := filepath.Join(dir, "single.json")
	if err := writeJSON(single, runs[:1], true); err != nil {
		t.Fatal(err)
	}
	var results []result
	if b, err := os.ReadFile(single); err != nil || json.Unmarshal(b, &results) != nil || len(results) != 1 || results[0].P99Ratio != 2 {
		t.Errorf("single run: %v, %+v", err, results)
	}
	several := filepath.Join(dir, "several.json")
	if err := writeJSON(several, runs, false); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(several)
	var got []struct {
		Run     int      `json:"run"`
		Build   string   `json:"build"`
		Results []result `json:"results"`
	}
	if err != nil || json.Unmarshal(b, &got) != nil || len(got) != 2 || got[1].Run != 2 || got[1].Build != "A" || got[1].Results[0].P99Ratio != 3 {
		t.Errorf("several runs: %v, %s", err, b)
	}
}

func TestRunsFlags(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"--runs", "0"}, &stderr, &stderr); code != 2 || !strings.Contains(stderr.String(), "--runs must be at least 1") {
		t.Errorf("--runs 0: exit %d, %q", code, stderr.String())
	}
	cfg, err := parseFlags([]string{"--runs", "3", "--against", "/x/roomcast"}, &stderr)
	if err != nil || cfg.runs != 3 || cfg.against != "/x/roomcast" {
		t.Errorf("parseFlags: %v, %+v", err, cfg)
	}
}

// A single run of one build prints its table alone, as before --runs;
// several runs, or two builds, the summaries as well.
func TestWriteReport(t *testing.T) {
	one := []*result{res("a", 2, 4)}
	for _, tc := range []struct {
		name   string
		runs   int
		builds []string
		single bool
		want   string
	}{
		{"single", 1, []string{"x"}, true, ""},
		{"runs", 2, []string{"x"}, false, "| Attack | p99 ratios | Median |"},
		{"against", 1, []string{"x", "y"}, false, "| Attack | p99 ratios, A | p99 ratios, B |"},
		{"against, runs", 2, []string{"x", "y"}, false, "| Attack | p99 ratios, A | p99 ratios, B |"},
	} {
		var runs []*runResults
		for round := 1; round <= tc.runs; round++ {
			for b, label := range tc.builds {
				runs = append(runs, &runResults{Run: round, Build: label, build: b, Results: one})
			}
		}
		var out, table bytes.Buffer
		cfg := &config{runs: tc.runs}
		single := writeReport(&out, runs, tc.builds, cfg)
		writeTable(&table, one, cfg)
		if single != tc.single {
			t.Errorf("%s: single = %v", tc.name, single)
		}
		if tc.single && out.String() != table.String() {
			t.Errorf("%s: printed\n%s\nnot the table alone:\n%s", tc.name, &out, &table)
		}
		if !tc.single && (!strings.Contains(out.String(), tc.want) || !strings.Contains(out.String(), table.String()[1:])) {
			t.Errorf("%s: printed\n%s\nwithout %q and the median run's table", tc.name, &out, tc.want)
		}
	}
}

// wantIn reports each of wants that got lacks.
func wantIn(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(got, want) {
			t.Errorf("the output lacks %q:\n%s", want, got)
		}
	}
}
