package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// series is one line of a panel.
type series struct {
	name  string
	color string
	v     func(sample) float64
}

// plot draws the samples as an SVG: RSS and Go heap in MB on top,
// goroutines and open descriptors below, over seconds, with the phases
// marked. It has no dependency and no script, so GitHub renders it.
func plot(samples []sample, marks []mark, c config) []byte {
	const w, panelH, left, right, top, gap = 900, 220, 70, 20, 64, 64
	h := top + 2*panelH + gap + 70
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	title := fmt.Sprintf("ssehub soak: %d streams, %v, %.0f events/s, %.0f streams/s churn", c.Conns, c.Duration, c.Rate, c.Churn)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	tMax := 1.0
	for _, s := range samples {
		tMax = max(tMax, s.T)
	}
	panels := []struct {
		title string
		lines []series
	}{
		{"memory (MB)", []series{
			{"RSS", "#d62728", func(s sample) float64 { return s.RSS / 1e6 }},
			{"Go heap allocated", "#ff9896", func(s sample) float64 { return s.HeapAlloc / 1e6 }},
		}},
		{"count", []series{
			{"goroutines", "#1f77b4", func(s sample) float64 { return s.Goroutines }},
			{"open fds", "#2ca02c", func(s sample) float64 { return s.FDs }},
			{"streams", "#9467bd", func(s sample) float64 { return s.Clients }},
		}},
	}
	for i, p := range panels {
		y0 := top + i*(panelH+gap)
		x := func(t float64) float64 { return left + t/tMax*float64(w-left-right) }
		vMax := 1.0
		for _, l := range p.lines {
			for _, s := range samples {
				vMax = max(vMax, l.v(s))
			}
		}
		vMax = niceCeil(vMax)
		y := func(v float64) float64 { return float64(y0+panelH) - v/vMax*float64(panelH) }
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", left, y0, w-left-right, panelH)
		for k := 0; k <= 4; k++ {
			v := vMax * float64(k) / 4
			fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>`, left, w-right, y(v), y(v))
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, short(v))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", left, y0-8, html.EscapeString(p.title))
		lx := left + 150
		for _, l := range p.lines {
			var pts []string
			for _, s := range samples {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.T), y(l.v(s))))
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8" points="%s"/>`+"\n", l.color, strings.Join(pts, " "))
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="3" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", lx, y0-13, l.color, lx+16, y0-8, html.EscapeString(l.name))
			lx += 130
		}
		for j, m := range marks {
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#555" stroke-dasharray="4 3"/>`+"\n", x(m.T), x(m.T), y0, y0+panelH)
			if i == 1 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="10" text-anchor="middle">%s</text>`+"\n", x(m.T), y0+panelH+14+12*(j%2), html.EscapeString(m.Label))
			}
		}
	}
	yAxis := top + 2*panelH + gap + 40
	for k := 0; k <= 10; k++ {
		t := tMax * float64(k) / 10
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, left+t/tMax*float64(w-left-right), yAxis, short(t))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">s</text>`+"\n", w-right, yAxis+14)
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// short formats an axis value.
func short(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4 && v == 1e3*math.Trunc(v/1e3):
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}
