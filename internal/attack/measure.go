package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// result is one attack's row.
type result struct {
	Name      string   `json:"name"`
	Label     string   `json:"label"`
	ServeArgs []string `json:"serve_args,omitempty"` // beyond the defaults
	Web       bool     `json:"web,omitempty"`        // the attacker called the web listener
	Baseline  latency  `json:"baseline"`
	Attack    latency  `json:"attack"`
	// P99Ratio is the attack's p99 over the baseline's; 0 when either has
	// no delivery.
	P99Ratio float64 `json:"p99_ratio"`
	// PeakRSS is the server's peak resident memory, in bytes (VmHWM: over
	// its life, which began with this attack's baseline).
	PeakRSS uint64 `json:"peak_rss_bytes"`
	// CPUSeconds is the server's CPU time while the attack ran.
	CPUSeconds float64 `json:"server_cpu_seconds"`
	// ReadBytes is what the server read through read system calls while
	// the attack ran, its clients' requests and what grpc-go discards of
	// refused calls alike (rchar of /proc/PID/io); 0 if unknown.
	ReadBytes uint64 `json:"server_read_bytes"`
	// Calls is the calls the server started while the attack ran
	// (grpc_server_started_total: Subscribe streams not included), ResetCloses the connections it closed
	// for rapid reset (roomcast_reset_flood_closes_total), and HeaderCloses
	// those it closed for their header lists
	// (roomcast_header_flood_closes_total); Penalised the new connections
	// from penalised addresses it did not serve
	// (roomcast_penalised_connections_total).
	Calls        float64 `json:"server_calls"`
	ResetCloses  float64 `json:"server_reset_closes"`
	HeaderCloses float64 `json:"server_header_closes"`
	Penalised    float64 `json:"server_penalised_connections"`
	// GCs is the server's garbage collections while the attack ran
	// (go_gc_duration_seconds_count).
	GCs float64 `json:"server_gcs"`
	// GOMAXPROCS is the server's (go_sched_gomaxprocs_threads), which
	// follows its affinity.
	GOMAXPROCS int `json:"server_gomaxprocs"`
	// RunqWait is how long the server's threads and the bystander's (this
	// process's) waited, runnable, for a core (runqWait), in milliseconds
	// a second, all their threads together; Load is the machine's load
	// average as the attack began.
	RunqWait struct {
		Server    phaseRates `json:"server"`
		Bystander phaseRates `json:"bystander"`
	} `json:"runq_wait_ms_per_s"`
	Load      string   `json:"load"`
	Attacker  string   `json:"attacker"`            // what the attacker saw
	Bystander []string `json:"bystander,omitempty"` // what else the bystander saw
	// Slowest are the bystander's deliveries at or past its p99 during the
	// attack, each with when it was published since the attack began.
	Slowest    []slowSample `json:"attack_slowest,omitempty"`
	ServerDied bool         `json:"server_died,omitempty"` // the server exited during the attack
	Err        string       `json:"err,omitempty"`
}

// measure runs attack a against a fresh server, with the bystander
// measuring before and during it.
func measure(ctx context.Context, e *env, a *attack, cfg *config, logf func(string, ...any)) *result {
	r := &result{Name: a.name, Label: a.label, ServeArgs: append(slices.Clip(a.serveArgs), cfg.serveArgs...), Web: cfg.web}
	srv, err := e.startServe(ctx, cfg.pin, r.ServeArgs, cfg.web)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer srv.stop()
	by, err := startBystander(ctx, srv.addr, e.bystander, "bystander.room")
	if err != nil {
		r.Err = err.Error()
		return r
	}
	finished := false
	finish := func() {
		if !finished {
			finished = true
			by.finish(5 * time.Second)
		}
	}
	defer finish()

	waits := newWaits(srv.cmd.Process.Pid)
	wait(ctx, cfg.baseline)
	cpu0, _ := srv.cpu()
	read0, err0 := srv.readBytes()
	m0, _ := srv.scrape(ctx)
	r.Load = loadAvg()
	waits.mark()
	by.setPhase(phaseAttack)
	done, err := startChild(ctx, childSpec{Attack: a.name, Addr: srv.attackAddr(), Key: e.attacker, Duration: cfg.duration}, cfg.pin)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	var child childResult
	select {
	case child = <-done:
	case <-srv.exited:
		child = <-done
	}
	cpu1, _ := srv.cpu()
	if read1, err1 := srv.readBytes(); err0 == nil && err1 == nil {
		r.ReadBytes = read1 - read0
	}
	r.RunqWait.Server, r.RunqWait.Bystander = waits.rates()
	r.PeakRSS, _ = srv.peakRSS()
	if m1, err := srv.scrape(ctx); err == nil && m0 != nil {
		r.Calls = m1["grpc_server_started_total"] - m0["grpc_server_started_total"]
		r.GCs = m1["go_gc_duration_seconds_count"] - m0["go_gc_duration_seconds_count"]
		r.ResetCloses = m1["roomcast_reset_flood_closes_total"]
		r.HeaderCloses = m1["roomcast_header_flood_closes_total"]
		r.Penalised = m1["roomcast_penalised_connections_total"]
		r.GOMAXPROCS = int(m1["go_sched_gomaxprocs_threads"])
	}
	r.ServerDied = !srv.alive()
	finish()
	r.CPUSeconds = (cpu1 - cpu0).Seconds()
	r.Attacker, r.Err = child.Summary, child.Err
	if r.ServerDied {
		r.Err = strings.TrimSpace(r.Err + " the server exited: " + srv.logTail())
	}
	r.Baseline, r.Attack = by.stats(phaseBaseline), by.stats(phaseAttack)
	r.Bystander = by.seen()
	r.Slowest = by.slowest(phaseAttack)
	if r.Baseline.P99MS > 0 && r.Attack.Delivered > 0 {
		r.P99Ratio = r.Attack.P99MS / r.Baseline.P99MS
	}
	return r
}

// wait waits for d or ctx.
func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// line is the result in one line, for the progress log.
func (r *result) line() string {
	if r.Err != "" && r.Attack.Delivered == 0 {
		return "FAILED: " + r.Err
	}
	return fmt.Sprintf("p99 %.1f ms → %.1f ms, peak RSS %s, server CPU %.1f s; attacker: %s", r.Baseline.P99MS, r.Attack.P99MS, mib(r.PeakRSS), r.CPUSeconds, r.Attacker)
}

func mib(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// writeTable prints the results as a Markdown table, with notes below.
func writeTable(w io.Writer, results []*result, cfg *config) {
	var procs []string
	for _, r := range results {
		if p := fmt.Sprint(r.GOMAXPROCS); r.GOMAXPROCS > 0 && !slices.Contains(procs, p) {
			procs = append(procs, p)
		}
	}
	fmt.Fprintf(w, "\nEach attack ran %v against a fresh `roomcast serve`, after a %v baseline; latencies are the bystander's, publish to delivery, one message every %v. %s", cfg.duration, cfg.baseline, bystanderEvery, cfg.pin)
	if len(procs) > 0 {
		fmt.Fprintf(w, " The server's GOMAXPROCS was %s.", strings.Join(procs, " or "))
	}
	fmt.Fprint(w, "\n\n")
	fmt.Fprintln(w, "| Attack | Baseline p50 | Baseline p99 | Attack p50 | Attack p99 | p99 ratio | Bystander lost | Server peak RSS | Server CPU | Run-queue wait a second: server; bystander (load) | Server calls | What the attacker saw |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		ratio := "–"
		if r.P99Ratio > 0 {
			ratio = fmt.Sprintf("%.1f×", r.P99Ratio)
		}
		saw := r.Attacker
		if r.Err != "" {
			saw = strings.TrimSpace(saw + " (error: " + r.Err + ")")
		}
		if r.ResetCloses > 0 {
			saw += fmt.Sprintf("; the server closed %s connections for rapid reset", commas(int(r.ResetCloses)))
		}
		if r.HeaderCloses > 0 {
			saw += fmt.Sprintf("; the server closed %s connections for their header lists", commas(int(r.HeaderCloses)))
		}
		if r.Penalised > 0 {
			saw += fmt.Sprintf("; %s new connections from the penalised address not served", commas(int(r.Penalised)))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %.1f s, %.0f GCs%s | %s; %s (%s) | %s | %s |\n",
			r.Label, ms(r.Baseline.P50MS, r.Baseline.Delivered), ms(r.Baseline.P99MS, r.Baseline.Delivered),
			ms(r.Attack.P50MS, r.Attack.Delivered), ms(r.Attack.P99MS, r.Attack.Delivered), ratio,
			lost(r), mib(r.PeakRSS), r.CPUSeconds, r.GCs, readCell(r.ReadBytes), r.RunqWait.Server, r.RunqWait.Bystander, r.Load,
			commas(int(r.Calls)), strings.ReplaceAll(saw, "|", "/"))
	}
	var notes []string
	for _, r := range results {
		if len(r.ServeArgs) > 0 {
			notes = append(notes, fmt.Sprintf("%s: serve also had %s.", r.Label, strings.Join(r.ServeArgs, " ")))
		}
		if r.Web {
			notes = append(notes, fmt.Sprintf("%s: the attacker called the web listener (--http-listen), the bystander the gRPC port.", r.Label))
		}
		if len(r.Bystander) > 0 {
			notes = append(notes, fmt.Sprintf("%s: the bystander saw %s.", r.Label, strings.Join(r.Bystander, "; ")))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, "- "+n)
		}
	}
}

// readCell is the server's bytes read, after its CPU and collections.
func readCell(b uint64) string {
	if b == 0 {
		return ""
	}
	return ", " + mib(b) + " read"
}

func ms(v float64, n int) string {
	if n == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f ms", v)
}

// lost is the bystander's publishes during the attack that failed or were
// not delivered in time, of those it made.
func lost(r *result) string {
	a := r.Attack
	n := a.Failed + max(0, a.Published-a.Delivered)
	return fmt.Sprintf("%d of %d", n, a.Published+a.Failed)
}
