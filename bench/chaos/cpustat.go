package main

import (
	"os"
	"strconv"
	"strings"
)

// cpuTimes is the machine's CPU time so far, busy and total, in clock
// ticks, from the first line of /proc/stat (Linux).
type cpuTimes struct{ busy, total int64 }

// readCPU reads /proc/stat; it returns zeros where there is none.
func readCPU() cpuTimes {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return cpuTimes{}
	}
	var t cpuTimes
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		t.total += n
		if i != 3 && i != 4 { // idle, iowait
			t.busy += n
		}
	}
	return t
}

// busySince returns the share of the machine's CPU time (all cores, all
// processes: the machine is shared) that was busy since t0, in percent:
// whether a time measured meanwhile was bound by the CPU.
func busySince(t0 cpuTimes) float64 {
	t1 := readCPU()
	if t1.total <= t0.total {
		return 0
	}
	return 100 * float64(t1.busy-t0.busy) / float64(t1.total-t0.total)
}
