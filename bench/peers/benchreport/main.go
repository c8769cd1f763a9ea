// Command benchreport turns the JSON reports of scripts/bench-peers.sh
// into Markdown tables and SVG charts.
//
//	benchreport -in bench/results/<stamp> -svg docs > table.md
//
// It reads <in>/run<N>/<scenario>/<server>.json, takes for every scenario
// and server the median over the runs, and writes the tables, the ratios
// of ssekit against the best peer, and the charts.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// result is the part of ssebench's JSON report that the tables use.
type result struct {
	Label   string `json:"label"`
	Machine struct {
		CPUs     int    `json:"cpus"`
		Go       string `json:"go"`
		Kernel   string `json:"kernel"`
		CPUModel string `json:"cpu_model"`
		LoadAvg  string `json:"loadavg"`
	} `json:"machine"`
	Connect struct {
		Established int                `json:"established"`
		Failed      int                `json:"failed"`
		Ended       int                `json:"ended_early"`
		Latency     map[string]float64 `json:"latency"`
	} `json:"connect"`
	Params struct {
		Mode string `json:"mode"`
	} `json:"params"`
	Publish struct {
		Accepted  int64              `json:"accepted"`
		Failed    int64              `json:"failed"`
		PerSec    float64            `json:"per_sec"`
		RoundTrip map[string]float64 `json:"round_trip"`
	} `json:"publish"`
	Delivery struct {
		Expected int64              `json:"expected"`
		Received int64              `json:"received"`
		Lost     int64              `json:"lost"`
		LossPct  float64            `json:"loss_pct"`
		Dups     int64              `json:"duplicates"`
		Misdeliv int64              `json:"misdelivered"`
		Reorders int64              `json:"reordered"`
		PerSec   float64            `json:"per_sec"`
		Latency  map[string]float64 `json:"latency"`
	} `json:"delivery"`
	Server struct {
		KiBPerConn       float64 `json:"kib_per_idle_conn"`
		RSSPeakKiB       float64 `json:"rss_peak_kib"`
		CPUPerDeliveryUs float64 `json:"cpu_us_per_delivery"`
		PerWrite         float64 `json:"deliveries_per_write"`
	} `json:"server"`
	Generator struct {
		CPUPerDeliveryUs float64 `json:"cpu_us_per_delivery"`
	} `json:"generator"`
}

// data holds every report: scenario → server → runs.
type data map[string]map[string][]result

func main() {
	in := flag.String("in", "", "results directory (holding run1, run2, …)")
	svgDir := flag.String("svg", "", "write the SVG charts to this directory")
	flag.Parse()
	if err := run(*in, *svgDir, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(in, svgDir string, out io.Writer) error {
	if in == "" {
		return fmt.Errorf("-in is required")
	}
	d, err := load(in)
	if err != nil {
		return err
	}
	writeTables(out, d)
	if svgDir != "" {
		return writeCharts(svgDir, d)
	}
	return nil
}

// load reads every <in>/run*/<scenario>/<server>.json.
func load(in string) (data, error) {
	files, err := filepath.Glob(filepath.Join(in, "run*", "*", "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no reports under %s", in)
	}
	d := data{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var r result
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		scenario := filepath.Base(filepath.Dir(f))
		server := strings.TrimSuffix(filepath.Base(f), ".json")
		if d[scenario] == nil {
			d[scenario] = map[string][]result{}
		}
		d[scenario][server] = append(d[scenario][server], r)
	}
	return d, nil
}

// median returns the median of f over runs (the mean of the middle two
// for an even count).
func median(runs []result, f func(*result) float64) float64 {
	if len(runs) == 0 {
		return 0
	}
	v := make([]float64, len(runs))
	for i := range runs {
		v[i] = f(&runs[i])
	}
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// serverOrder puts ssekit, ssehub and ssekit's variants first, then the
// peers by name.
func serverOrder(m map[string][]result) []string {
	var out []string
	for s := range m {
		out = append(out, s)
	}
	rank := func(s string) int {
		switch s {
		case "ssekit":
			return 0
		case "ssehub":
			return 1
		}
		if ours(s) {
			return 2
		}
		return 3
	}
	slices.SortFunc(out, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	return out
}

// ours reports whether server is one of ssekit's: ssekit, ssehub, or a
// variant of ssekit (ssekit-http, ssekit-nodelay).
func ours(server string) bool { return strings.HasPrefix(server, "ssekit") || server == "ssehub" }
