package main

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// column is one table column: a header and how to format the median of
// the runs.
type column struct {
	head string
	cell func(runs []result) string
}

// metric returns a column of the median of f, formatted with format.
func metric(head, format string, f func(*result) float64) column {
	return column{head, func(runs []result) string { return fmt.Sprintf(format, median(runs, f)) }}
}

var (
	colDelivPerSec = metric("deliveries/s", "%.0f", func(r *result) float64 { return r.Delivery.PerSec })
	colPubPerSec   = metric("publishes/s", "%.0f", func(r *result) float64 { return r.Publish.PerSec })
	colP50         = metric("p50 ms", "%.1f", func(r *result) float64 { return r.Delivery.Latency["p50_us"] / 1e3 })
	colP99         = metric("p99 ms", "%.1f", func(r *result) float64 { return r.Delivery.Latency["p99_us"] / 1e3 })
	colMax         = metric("max ms", "%.1f", func(r *result) float64 { return r.Delivery.Latency["max_us"] / 1e3 })
	colServerCPU   = metric("server µs/delivery", "%.2f", func(r *result) float64 { return r.Server.CPUPerDeliveryUs })
	colPerWrite    = metric("deliveries/write", "%.1f", func(r *result) float64 { return r.Server.PerWrite })
	colGenCPU      = metric("generator µs/delivery", "%.2f", func(r *result) float64 { return r.Generator.CPUPerDeliveryUs })
	colKiB         = metric("KiB/conn", "%.1f", func(r *result) float64 { return r.Server.KiBPerConn })
	colPeak        = metric("peak RSS MiB", "%.0f", func(r *result) float64 { return r.Server.RSSPeakKiB / 1024 })
	colConnP99     = metric("connect p99 ms", "%.0f", func(r *result) float64 { return r.Connect.Latency["p99_us"] / 1e3 })
	colPubP50      = metric("publish p50 ms", "%.2f", func(r *result) float64 { return r.Publish.RoundTrip["p50_us"] / 1e3 })
	colPubP99      = metric("publish p99 ms", "%.2f", func(r *result) float64 { return r.Publish.RoundTrip["p99_us"] / 1e3 })
	colLoss        = column{"loss", func(runs []result) string {
		s := fmt.Sprintf("%.3f %%", median(runs, func(r *result) float64 { return r.Delivery.LossPct }))
		var dups, reorders, misdeliv, pubFailed, failed, ended int64
		for _, r := range runs {
			dups += r.Delivery.Dups
			reorders += r.Delivery.Reorders
			misdeliv += r.Delivery.Misdeliv
			pubFailed += r.Publish.Failed
			failed += int64(r.Connect.Failed)
			ended += int64(r.Connect.Ended)
		}
		var notes []string
		if misdeliv > 0 {
			notes = append(notes, fmt.Sprintf("%d misdelivered", misdeliv))
		}
		if pubFailed > 0 {
			notes = append(notes, fmt.Sprintf("%d publishes failed", pubFailed))
		}
		if dups > 0 {
			notes = append(notes, fmt.Sprintf("%d dup", dups))
		}
		if reorders > 0 {
			notes = append(notes, fmt.Sprintf("%d reordered", reorders))
		}
		if failed > 0 {
			notes = append(notes, fmt.Sprintf("%d conn failed", failed))
		}
		if ended > 0 {
			notes = append(notes, fmt.Sprintf("%d streams cut", ended))
		}
		if len(notes) > 0 {
			s += " (" + strings.Join(notes, ", ") + ", all runs)"
		}
		return s
	}}
	colFailed = column{"conns failed", func(runs []result) string {
		n := 0
		for _, r := range runs {
			n += r.Connect.Failed
		}
		return fmt.Sprint(n)
	}}
)

// scenario describes one scenario's table.
type scenario struct {
	key, title string
	cols       []column
}

var scenarios = []scenario{
	{"idle10k", "Idle, 10,000 connections", []column{colKiB, colPeak, colConnP99, colFailed}},
	{"idle18k", "Idle, 18,000 connections", []column{colKiB, colPeak, colConnP99, colFailed}},
	{"fan5", "Broadcast fan-out, 10,000 connections × 5 events/s", []column{colDelivPerSec, colP50, colP99, colMax, colLoss, colServerCPU, colPerWrite, colGenCPU}},
	{"fan50", "Broadcast fan-out, 10,000 connections × 50 events/s", []column{colDelivPerSec, colP50, colP99, colMax, colLoss, colServerCPU, colPerWrite, colGenCPU}},
	{"sat10k", "Saturation, 10,000 connections (publish as fast as accepted)", []column{colPubPerSec, colDelivPerSec, colP50, colP99, colLoss, colServerCPU, colPerWrite, colGenCPU}},
	{"sat1k", "Saturation, 1,000 connections (publish as fast as accepted)", []column{colPubPerSec, colDelivPerSec, colP50, colP99, colLoss, colServerCPU, colPerWrite, colGenCPU}},
	{"rate1k", "1,000 connections × 2,000 events/s", []column{colDelivPerSec, colP50, colP99, colLoss, colServerCPU, colPerWrite, colGenCPU}},
	{"tgt2k-10k", "Targeted, 2,000 users × 1 stream, 10,000 events/s each to one random user", targetedCols},
	{"tgt2k-sat", "Targeted, 2,000 users × 1 stream, as fast as accepted", targetedCols},
	{"tgt10k-1k", "Targeted, 10,000 users × 1 stream, 1,000 events/s each to one random user", targetedCols},
	{"tgt10k-10k", "Targeted, 10,000 users × 1 stream, 10,000 events/s", targetedCols},
	{"tgt10k-sat", "Targeted, 10,000 users × 1 stream, as fast as accepted", targetedCols},
	{"tgt18k-1k", "Targeted, 18,000 users × 1 stream, 1,000 events/s", targetedCols},
	{"tgt18k-10k", "Targeted, 18,000 users × 1 stream, 10,000 events/s", targetedCols},
	{"tgt18k-sat", "Targeted, 18,000 users × 1 stream, as fast as accepted", targetedCols},
	{"inproc10k-100k", "Targeted in-process (the server publishes), 10,000 users, 100,000 events/s", inprocCols},
	{"inproc10k-sat", "Targeted in-process (the server publishes), 10,000 users, as fast as accepted", inprocCols},
}

// targetedCols are a targeted scenario's columns: publish rate and round
// trip, deliveries, latency, loss (misdeliveries in its note) and CPU.
var targetedCols = []column{colPubPerSec, colPubP50, colPubP99, colDelivPerSec, colP50, colP99, colLoss, colServerCPU, colGenCPU}

// inprocCols: the in-process publisher's "publish" is one SendToUser call.
var inprocCols = []column{colPubPerSec, colDelivPerSec, colP50, colP99, colLoss, colServerCPU, colGenCPU}

// writeTables writes one Markdown table per scenario, then the targets.
func writeTables(w io.Writer, d data) {
	for _, sc := range scenarios {
		m := d[sc.key]
		if m == nil {
			continue
		}
		fmt.Fprintf(w, "#### %s\n\n| server | runs |", sc.title)
		for _, c := range sc.cols {
			fmt.Fprintf(w, " %s |", c.head)
		}
		fmt.Fprintf(w, "\n|---|---|%s\n", strings.Repeat("---:|", len(sc.cols)))
		for _, s := range serverOrder(m) {
			name := s
			if ours(s) {
				name = "**" + s + "**"
			}
			fmt.Fprintf(w, "| %s | %d |", name, len(m[s]))
			for _, c := range sc.cols {
				fmt.Fprintf(w, " %s |", c.cell(m[s]))
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
	writeTargets(w, d)
}

// best returns the best peer's median of f (the highest, or the lowest
// when lower is better) and its name; peers are the servers that are not
// ours.
func best(d data, key string, f func(*result) float64, lowerBetter bool) (float64, string) {
	v, name := math.NaN(), ""
	for s, runs := range d[key] {
		if ours(s) {
			continue
		}
		x := median(runs, f)
		if math.IsNaN(v) || (lowerBetter && x < v) || (!lowerBetter && x > v) {
			v, name = x, s
		}
	}
	return v, name
}

// writeTargets checks the targets for ssekit.
func writeTargets(w io.Writer, d data) {
	fmt.Fprintf(w, "#### Targets (ssekit, medians of the runs)\n\n| target | ssekit | reference | ratio | met |\n|---|---:|---:|---:|:---:|\n")
	row := func(name string, ours, ref float64, refName string, ratio float64, ok bool) {
		mark := "no"
		if ok {
			mark = "**yes**"
		}
		fmt.Fprintf(w, "| %s | %.3g | %.3g (%s) | %.2f× | %s |\n", name, ours, ref, refName, ratio, mark)
	}
	get := func(key string, f func(*result) float64) (float64, bool) {
		runs, ok := d[key]["ssekit"]
		if !ok {
			return 0, false
		}
		return median(runs, f), true
	}
	dps := func(r *result) float64 { return r.Delivery.PerSec }
	cpu := func(r *result) float64 { return r.Server.CPUPerDeliveryUs }
	kib := func(r *result) float64 { return r.Server.KiBPerConn }
	for _, key := range []string{"sat1k", "sat10k"} {
		if v, ok := get(key, dps); ok {
			ref, name := best(d, key, dps, false)
			row(key+": deliveries/s ≥ 4× best peer", v, ref, name, v/ref, v >= 4*ref)
		}
		if v, ok := get(key, cpu); ok {
			row(key+": server CPU ≤ 1 µs/delivery", v, 1, "target", v/1, v <= 1)
		}
	}
	if v, ok := get("fan5", cpu); ok {
		ref, name := best(d, "fan5", cpu, true)
		row("fan5: server CPU ≤ ½ best peer's", v, ref, name, v/ref, v <= ref/2)
	}
	if v, ok := get("fan5", func(r *result) float64 { return r.Delivery.Latency["p99_us"] / 1e3 }); ok {
		loss, _ := get("fan5", func(r *result) float64 { return float64(r.Delivery.Lost) })
		row(fmt.Sprintf("fan5: p99 ≤ 100 ms (ms), no loss (lost %.0f)", loss), v, 100, "target", v/100, v <= 100 && loss == 0)
	}
	for _, key := range []string{"idle10k", "idle18k"} {
		if v, ok := get(key, kib); ok {
			ref, name := best(d, key, kib, true)
			row(key+": KiB/conn ≤ leanest peer's", v, ref, name, v/ref, v <= ref)
		}
	}
	if v, ok := get("idle18k", kib); ok {
		row("idle18k: KiB/conn ≤ 6", v, 6, "target", v/6, v <= 6)
	}
	for _, key := range []string{"tgt10k-sat", "tgt18k-sat"} {
		if v, ok := get(key, dps); ok {
			ref, name := best(d, key, dps, false)
			row(key+": deliveries/s vs best peer", v, ref, name, v/ref, v >= ref)
		}
	}
	if v, ok := get("inproc10k-sat", dps); ok {
		row("inproc10k-sat: ≥ 1 M deliveries/s", v, 1e6, "target", v/1e6, v >= 1e6)
	}
	fmt.Fprintln(w)
}
