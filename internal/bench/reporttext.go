package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// writeText prints the medians and the ratios as tables.
func writeText(w io.Writer, r *Report) {
	c := r.Config
	fmt.Fprintf(w, "roomcast-bench: %d publishers, window %d; medians of %d repetitions of %v after %v warm-up\n",
		c.Publishers, c.Window, c.Reps, time.Duration(c.DurationS*1e9), time.Duration(c.WarmupS*1e9))
	fmt.Fprintf(w, "shapes as run: rooms × subscribers per room over connections; fanout sizes %v of %d subscribers (each size: subscribers/size rooms) with %s publishes\n",
		c.Sizes, c.Subscribers, c.Publish)
	fmt.Fprintf(w, "roomcast subscribers use the client package (client.Subscription); publishers client.Client.Publish (unary, %d in flight) or a client.Publisher (stream: PublishAsync, %d in flight)\n",
		UnaryInFlight, publishLanes(PublishStream))
	fmt.Fprintf(w, "NATS publishers call Publish; publish-only, with a Flush (a round trip) every %d\n", natsFlushEvery)
	if len(r.ServerDiffers) > 0 {
		fmt.Fprintln(w, "server under test: \"roomcast serve\" with its defaults (metrics on), except:")
		for _, d := range r.ServerDiffers {
			fmt.Fprintf(w, "  - %s\n", d)
		}
	}
	if r.Host.ServerInProcess {
		if r.Host.WorkerProcess {
			fmt.Fprintln(w, "server CPU and memory: the parent process, which hosts only the server")
		} else {
			fmt.Fprintln(w, "server CPU and memory: the parent process, which also hosts the worker (in-process: not a measurement)")
		}
	}
	writeClusterHeader(w, r)
	fmt.Fprintln(w, "latency at saturation is mostly time queued in the flow-control window; paced latency is the one to compare")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tshape\tkind\tvariant\truns\trate\tpublished/s\tdeliveries/s\tMB/s\tCPU ns/deliv\tCPU ns/pub\tp50 µs\tp99 µs\tp99.9 µs\tB/stream idle\tRSS B/stream\tB/conn\tRSS B/conn\twrites/deliv\tclient ns/deliv\tmsgs/frame\t")
	opt := func(v *float64, format string) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf(format, *v)
	}
	for _, p := range r.Points {
		rate := "max"
		if p.PublishRate > 0 {
			rate = fmt.Sprintf("%.0f", p.PublishRate)
		}
		runs := fmt.Sprint(p.Runs)
		if p.Failed > 0 {
			runs += fmt.Sprintf(" (%d failed)", p.Failed)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.1f\t%s\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			p.Scenario, p.Shape, p.Kind, pointSeries(p), runs, rate, p.PublishedPerSec, p.DeliveredPerSec, p.DeliveredMBPerSec,
			opt(p.CPUNsPerDelivery, "%.0f"), opt(p.CPUNsPerPublish, "%.0f"),
			p.LatencyP50US, p.LatencyP99US, p.LatencyP999US,
			opt(p.MemPerStreamIdleBytes, "%.0f"), opt(p.MemPerStreamRSSBytes, "%.0f"), opt(p.MemPerConnectionBytes, "%.0f"), opt(p.MemPerConnRSSBytes, "%.0f"),
			opt(p.WritesPerDelivery, "%.3f"), opt(p.WorkerNsPerDelivery, "%.0f"), opt(p.MessagesPerFrame, "%.1f"))
	}
	tw.Flush()
	writeClusterText(w, r)
	if len(r.Ratios) > 0 {
		fmt.Fprintln(w, "\nratios (of / baseline; below 1 is less):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, x := range r.Ratios {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s vs %s\t%.3f\n", x.Scenario, x.Shape, x.Kind, x.Metric, x.Of, x.Baseline, x.Value)
		}
		tw.Flush()
	}
	var notes []string
	for _, t := range r.Trials {
		for _, n := range t.Notes {
			notes = append(notes, fmt.Sprintf("%s %s, %s, %s rep %d: %s", t.Variant, t.Scenario, t.Shape, t.Kind, t.Rep, n))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "\nnotes:\n  %s\n", strings.Join(notes, "\n  "))
	}
	if r.OK {
		fmt.Fprintln(w, "\nok: every subscriber got every message in order; none was cut off")
	} else {
		fmt.Fprintf(w, "\nFAILED:\n  %s\n", strings.Join(r.Failures, "\n  "))
	}
}
