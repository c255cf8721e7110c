package bench

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"slices"
)

// Chart layout, in SVG user units.
const (
	chartPanelW = 400 // one panel, with its margins
	chartPlotW  = 300 // its plotting area
	chartPlotH  = 260
	chartLeft   = 72 // panel edge to plotting area
	chartTop    = 110
	chartHeight = chartTop + chartPlotH + 70
)

// variantColors are colour-blind-safe (Okabe-Ito), one per variant.
var variantColors = map[string]string{
	VariantRoomcast:   "#0072B2",
	VariantEncodeEach: "#E69F00",
	VariantNATS:       "#009E73",
	VariantWatch:      "#CC79A7",
}

// panel is one chart: a metric of the points of one kind against room size.
type panel struct {
	title string
	kind  string
	get   func(Point) *float64
}

// chartSVG draws, side by side, delivered messages/s and server CPU per
// delivery against room size at the main kind, and p99 latency under paced
// load, one line per variant.
func chartSVG(r *Report) []byte {
	main, latency := KindSaturation, KindPaced
	if r.Config.Rate > 0 {
		main = KindRate
	}
	latencyTitle := fmt.Sprintf("p99 latency, µs (paced: %s deliveries/s)", siFormat(r.Config.Paced))
	if r.Config.Paced == 0 {
		latency, latencyTitle = main, "p99 latency, µs ("+main+")"
	}
	panels := []panel{
		{"Delivered messages/s (" + main + ")", main, func(p Point) *float64 { return &p.DeliveredPerSec }},
		{"Server CPU per delivery, ns (" + main + ")", main, func(p Point) *float64 { return p.CPUNsPerDelivery }},
		{latencyTitle, latency, func(p Point) *float64 { return &p.LatencyP99US }},
	}
	width := chartPanelW*len(panels) + 20
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, chartHeight, width, chartHeight)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	c := r.Config
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", 20,
		esc(fmt.Sprintf("roomcast-bench: %d subscribers, %d-byte payloads, %d %s publisher(s); medians of %d run(s)", c.Subscribers, c.PayloadBytes, c.Publishers, c.Publish, c.Reps)))
	fmt.Fprintf(&b, `<text x="%d" y="42" fill="#555">%s</text>`+"\n", 20,
		esc(fmt.Sprintf("%s, %d CPUs, %s; started %s; shapes under each size: rooms × per room / connections", r.Host.GOOS+"/"+r.Host.GOARCH, r.Host.CPUs, r.Host.GoVersion, r.Started.Format("2006-01-02 15:04 UTC"))))
	legend(&b, chartSetups(r), 20, 66)
	for i, p := range panels {
		drawPanel(&b, r, p, 10+i*chartPanelW)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// seriesDash is the stroke-dasharray attribute of a series' line: dashed
// on Redis, so that a variant keeps its colour on either engine.
func seriesDash(s setup) string {
	if s.engine == EngineRedis {
		return ` stroke-dasharray="6 3"`
	}
	return ""
}

func legend(b *bytes.Buffer, all []setup, x, y int) {
	for _, s := range all {
		col, v := variantColors[s.variant], series(s.variant, s.engine)
		fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"%s/>`, x, y, x+24, y, col, seriesDash(s))
		fmt.Fprintf(b, `<circle cx="%d" cy="%d" r="4" fill="%s"/>`, x+12, y, col)
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", x+30, y+4, esc(v))
		x += 40 + 8*len(v) + 20
	}
}

func drawPanel(b *bytes.Buffer, r *Report, p panel, x0 int) {
	px, py := x0+chartLeft, chartTop
	fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", px, py-14, esc(p.title))

	type pt struct{ x, y float64 }
	lines := map[setup][]pt{}
	shapes := map[int]string{} // room size: the shape it was run in
	var sizes []float64
	ymax := 0.0
	for _, pnt := range r.Points {
		v := p.get(pnt)
		if pnt.Scenario != ScenarioFanout || pnt.Kind != p.kind || pnt.Runs == 0 || v == nil {
			continue
		}
		k := setup{pnt.Variant, pnt.Engine, pnt.Publish}
		lines[k] = append(lines[k], pt{float64(pnt.RoomSize), *v})
		shapes[pnt.RoomSize] = fmt.Sprintf("%d×%d/%d", pnt.Rooms, pnt.RoomSize, pnt.Connections)
		sizes = append(sizes, float64(pnt.RoomSize))
		ymax = max(ymax, *v)
	}
	// Axes.
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", px, py, chartPlotW, chartPlotH)
	if len(sizes) == 0 {
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle" fill="#777">not measured</text>`+"\n", px+chartPlotW/2, py+chartPlotH/2)
		return
	}
	slices.Sort(sizes)
	sizes = slices.Compact(sizes)
	logX := sizes[len(sizes)-1]/sizes[0] >= 4
	xpos := func(v float64) float64 {
		if len(sizes) == 1 {
			return float64(px) + chartPlotW/2
		}
		lo, hi, x := sizes[0], sizes[len(sizes)-1], v
		if logX {
			lo, hi, x = math.Log10(lo), math.Log10(hi), math.Log10(v)
		}
		return float64(px) + 20 + (x-lo)/(hi-lo)*(chartPlotW-40)
	}
	top, step := niceScale(ymax)
	ypos := func(v float64) float64 { return float64(py+chartPlotH) - v/top*chartPlotH }
	for v := 0.0; v <= top*1.0001; v += step {
		y := ypos(v)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`, px+1, y, px+chartPlotW-1, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", px-6, y+4, siFormat(v))
	}
	for _, s := range sizes {
		x := xpos(s)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999"/>`, x, py+chartPlotH, x, py+chartPlotH+5)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, py+chartPlotH+19, siFormat(s))
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="9" fill="#555">%s</text>`+"\n", x, py+chartPlotH+31, esc(shapes[int(s)]))
	}
	xlabel := "subscribers per room"
	if logX {
		xlabel += " (log scale)"
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle" fill="#333">%s</text>`+"\n", px+chartPlotW/2, py+chartPlotH+50, xlabel)
	// One line per series, in legend order.
	for _, su := range chartSetups(r) {
		pts := lines[su]
		if len(pts) == 0 {
			continue
		}
		slices.SortFunc(pts, func(a, b pt) int { return int(math.Copysign(1, a.x-b.x)) })
		col, v := variantColors[su.variant], series(su.variant, su.engine)
		var path bytes.Buffer
		for i, q := range pts {
			cmd := "L"
			if i == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&path, "%s%.1f %.1f ", cmd, xpos(q.x), ypos(q.y))
		}
		fmt.Fprintf(b, `<path d="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", path.String(), col, seriesDash(su))
		for _, q := range pts {
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"><title>%s, %s per room: %s</title></circle>`+"\n",
				xpos(q.x), ypos(q.y), col, esc(v), siFormat(q.x), siFormat(q.y))
		}
	}
}

// chartSetups are the fanout's series, in legend order.
func chartSetups(r *Report) []setup {
	return setupsOf(r.Config.Variants, r.Config.Engines, []string{r.Config.Publish})
}

// niceScale returns an axis top at or above v and a tick step: 1, 2 or 5
// times a power of ten, about five ticks.
func niceScale(v float64) (top, step float64) {
	if v <= 0 {
		return 1, 0.2
	}
	raw := v / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if step = m * mag; step >= raw {
			break
		}
	}
	return math.Ceil(v/step) * step, step
}

// siFormat writes v with a k, M or G suffix, to three significant digits.
func siFormat(v float64) string {
	for _, u := range []struct {
		div float64
		sfx string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if math.Abs(v) >= u.div {
			return trimFloat(v/u.div) + u.sfx
		}
	}
	return trimFloat(v)
}

func trimFloat(v float64) string {
	if a := math.Abs(v); a >= 100 || a == 0 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func esc(s string) string { return html.EscapeString(s) }
