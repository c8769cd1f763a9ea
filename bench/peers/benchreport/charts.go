package main

import (
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// A chart is a column of panels; a panel is a horizontal bar chart with
// one row per server and one bar per series in each row.
type panel struct {
	title  string
	series []string // bar names within a row; one series: no legend
	rows   []row
	log    bool // log scale, for values spread over decades
	format func(float64) string
}

type row struct {
	label  string
	values []float64
	ours   bool
}

const (
	chartWidth = 760
	labelWidth = 130
	valueWidth = 90
	barHeight  = 14
)

// seriesColors colour the bars of a multi-series panel.
var seriesColors = []string{"#4e79a7", "#f28e2b", "#e15759", "#76b7b2"}

// svg renders panels under a title.
func svg(title string, panels []panel) string {
	var b strings.Builder
	y := 34
	var body strings.Builder
	for _, p := range panels {
		y = p.render(&body, y)
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", chartWidth, y+10, chartWidth, y+10)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="16" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	b.WriteString(body.String())
	b.WriteString("</svg>\n")
	return b.String()
}

// render draws p from y down and returns the y below it.
func (p panel) render(b *strings.Builder, y int) int {
	fmt.Fprintf(b, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y+14, html.EscapeString(p.title))
	y += 24
	if len(p.series) > 1 {
		// The legend gets a line of its own, under the panel's title.
		x := labelWidth
		for i, s := range p.series {
			fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
				x, y-4, seriesColors[i%len(seriesColors)], x+14, y+5, html.EscapeString(s))
			x += 14 + 8*len(s) + 16
		}
		y += 16
	}
	lo, hi := p.bounds()
	scale := func(v float64) float64 {
		w := float64(chartWidth - labelWidth - valueWidth)
		if v <= 0 || hi <= 0 {
			return 0
		}
		if p.log {
			return w * (math.Log10(v) - math.Log10(lo)) / (math.Log10(hi) - math.Log10(lo))
		}
		return w * v / hi
	}
	for _, r := range p.rows {
		h := barHeight*len(r.values) + 6
		weight := "normal"
		if r.ours {
			weight = "bold"
		}
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end" font-weight="%s">%s</text>`+"\n",
			labelWidth-8, y+h/2+4, weight, html.EscapeString(r.label))
		for i, v := range r.values {
			color := seriesColors[i%len(seriesColors)]
			if len(p.series) <= 1 {
				color = "#9aa5b1"
				if r.ours {
					color = "#2e6fba"
				}
			}
			w := scale(v)
			by := y + i*barHeight
			fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", labelWidth, by, max(w, 1), barHeight-2, color)
			fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="11">%s</text>`+"\n", float64(labelWidth)+max(w, 1)+4, by+barHeight-4, html.EscapeString(p.format(v)))
		}
		y += h
	}
	if p.log {
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="10" fill="#666">log scale from %s</text>`+"\n", labelWidth, y+10, html.EscapeString(p.format(lo)))
		y += 12
	}
	return y + 10
}

// bounds returns the smallest positive value (rounded down to a power of
// ten, for a log scale) and the largest.
func (p panel) bounds() (lo, hi float64) {
	lo = math.Inf(1)
	for _, r := range p.rows {
		for _, v := range r.values {
			hi = max(hi, v)
			if v > 0 {
				lo = min(lo, v)
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo = 1
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	if hi <= lo {
		hi = lo * 10
	}
	return lo, hi
}

// singlePanel charts one metric of one scenario, one bar per server.
func singlePanel(d data, key, title string, f func(*result) float64, format func(float64) string, log bool) (panel, bool) {
	m := d[key]
	if m == nil {
		return panel{}, false
	}
	p := panel{title: title, format: format, log: log}
	for _, s := range serverOrder(m) {
		p.rows = append(p.rows, row{label: s, values: []float64{median(m[s], f)}, ours: ours(s)})
	}
	return p, true
}

// latencyPanel charts p50, p90 and p99 of one scenario, log scale.
func latencyPanel(d data, key, title string) (panel, bool) {
	m := d[key]
	if m == nil {
		return panel{}, false
	}
	p := panel{title: title, series: []string{"p50", "p90", "p99"}, log: true, format: fmtMs}
	for _, s := range serverOrder(m) {
		var vs []float64
		for _, q := range []string{"p50_us", "p90_us", "p99_us"} {
			vs = append(vs, median(m[s], func(r *result) float64 { return r.Delivery.Latency[q] / 1e3 }))
		}
		p.rows = append(p.rows, row{label: s, values: vs, ours: ours(s)})
	}
	return p, true
}

func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM/s", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk/s", v/1e3)
	}
	return fmt.Sprintf("%.0f/s", v)
}

func fmtMs(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", v/1000)
	}
	if v >= 10 {
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.1f ms", v)
}

func fmtKiB(v float64) string { return fmt.Sprintf("%.1f KiB", v) }
func fmtUs(v float64) string  { return fmt.Sprintf("%.2f µs", v) }

// writeCharts writes the SVG charts into dir.
func writeCharts(dir string, d data) error {
	dps := func(r *result) float64 { return r.Delivery.PerSec }
	cpu := func(r *result) float64 { return r.Server.CPUPerDeliveryUs }
	kib := func(r *result) float64 { return r.Server.KiBPerConn }
	charts := []struct {
		file, title string
		panels      []func() (panel, bool)
	}{
		{"perf-deliveries.svg", "Deliveries per second (higher is better)", []func() (panel, bool){
			func() (panel, bool) {
				return singlePanel(d, "sat10k", "Saturation, 10k connections", dps, fmtRate, false)
			},
			func() (panel, bool) {
				return singlePanel(d, "sat1k", "Saturation, 1k connections", dps, fmtRate, false)
			},
			func() (panel, bool) {
				return singlePanel(d, "rate1k", "1k connections × 2,000 events/s", dps, fmtRate, false)
			},
			func() (panel, bool) {
				return singlePanel(d, "fan50", "10k connections × 50 events/s", dps, fmtRate, false)
			},
		}},
		{"perf-cpu.svg", "Server CPU per delivery (lower is better)", []func() (panel, bool){
			func() (panel, bool) {
				return singlePanel(d, "sat10k", "Saturation, 10k connections", cpu, fmtUs, false)
			},
			func() (panel, bool) { return singlePanel(d, "sat1k", "Saturation, 1k connections", cpu, fmtUs, false) },
			func() (panel, bool) {
				return singlePanel(d, "fan5", "10k connections × 5 events/s", cpu, fmtUs, false)
			},
			func() (panel, bool) {
				return singlePanel(d, "fan50", "10k connections × 50 events/s", cpu, fmtUs, false)
			},
		}},
		{"perf-memory.svg", "Server memory per idle connection (lower is better)", []func() (panel, bool){
			func() (panel, bool) { return singlePanel(d, "idle10k", "10k idle connections", kib, fmtKiB, false) },
			func() (panel, bool) { return singlePanel(d, "idle18k", "18k idle connections", kib, fmtKiB, false) },
		}},
		{"perf-targeted.svg", "Targeted: each event to one random user (deliveries/s: higher is better; CPU: lower)", []func() (panel, bool){
			func() (panel, bool) {
				return singlePanel(d, "tgt10k-sat", "Deliveries/s, 10k users, as fast as accepted", dps, fmtRate, false)
			},
			func() (panel, bool) {
				return singlePanel(d, "tgt18k-sat", "Deliveries/s, 18k users, as fast as accepted", dps, fmtRate, false)
			},
			func() (panel, bool) {
				return singlePanel(d, "inproc10k-sat", "Deliveries/s, 10k users, published in-process", dps, fmtRate, true)
			},
			func() (panel, bool) {
				return singlePanel(d, "tgt10k-sat", "Server CPU per delivery, 10k users, as fast as accepted", cpu, fmtUs, false)
			},
			func() (panel, bool) {
				return singlePanel(d, "tgt10k-10k", "Server CPU per delivery, 10k users × 10,000 events/s", cpu, fmtUs, false)
			},
		}},
		{"perf-targeted-latency.svg", "Targeted: publish → receive latency (lower is better)", []func() (panel, bool){
			func() (panel, bool) { return latencyPanel(d, "tgt10k-1k", "10k users, 1,000 events/s") },
			func() (panel, bool) { return latencyPanel(d, "tgt10k-10k", "10k users, 10,000 events/s") },
			func() (panel, bool) { return latencyPanel(d, "tgt18k-10k", "18k users, 10,000 events/s") },
			func() (panel, bool) {
				return latencyPanel(d, "inproc10k-100k", "10k users, 100,000 events/s in-process")
			},
		}},
		{"perf-latency.svg", "Publish → receive latency (lower is better)", []func() (panel, bool){
			func() (panel, bool) { return latencyPanel(d, "fan5", "10k connections × 5 events/s") },
			func() (panel, bool) { return latencyPanel(d, "fan50", "10k connections × 50 events/s") },
			func() (panel, bool) { return latencyPanel(d, "rate1k", "1k connections × 2,000 events/s") },
		}},
	}
	for _, c := range charts {
		var ps []panel
		for _, mk := range c.panels {
			if p, ok := mk(); ok {
				ps = append(ps, p)
			}
		}
		if len(ps) == 0 {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, c.file), []byte(svg(c.title, ps)), 0o644); err != nil {
			return err
		}
	}
	return nil
}
