package main

import (
	"fmt"
	"strings"
	"time"

	sse "github.com/ssekit/sse"
)

// summary is the final accounting of a chaos run.
type summary struct {
	Started   time.Time `json:"started"`
	Nodes     int       `json:"nodes"`
	Clients   int       `json:"clients"`
	Users     int       `json:"users"`
	Duration  string    `json:"duration"`
	Rate      float64   `json:"rate"`
	Persist   bool      `json:"redis_persistent"`
	Faults    []string  `json:"faults"`
	Published int       `json:"published"` // events accepted (an id returned)
	PubFails  int       `json:"publish_failed_attempts"`
	// Expected is the sum over clients of the events addressed to each
	// since its first stream opened; each is Delivered, Resynced (lost,
	// but announced by a resync) or Lost.
	Expected   int `json:"expected"`
	Delivered  int `json:"delivered"`
	Resynced   int `json:"resynced"`
	Lost       int `json:"lost"`
	Duplicates int `json:"duplicates"`
	OutOfOrder int `json:"out_of_order"`
	Misrouted  int `json:"misrouted"` // received but addressed to another user
	// Orphans are events received that the publisher never got an id for:
	// a publish whose answer was lost when its node was killed. Not a
	// fault of delivery; the publisher retried them, as it should.
	Orphans      int    `json:"orphans"`
	ResyncEvents int    `json:"resync_events"`
	Resumes      int    `json:"resumes"` // reconnections with Last-Event-ID
	Behind       int    `json:"behind"`  // clients without the last event at the end
	Verdict      string `json:"verdict"`
	// Diagnoses show, for the first faults, what the client saw around
	// each: the events and its (re)connections.
	Diagnoses []string `json:"diagnoses,omitempty"`
	Problems  []string `json:"problems,omitempty"`
}

// account checks every client's events against what was published.
func account(c config, subs []*subscriber, pubs []published, pubFails int, faults []string, behind int) summary {
	sum := summary{
		Started: time.Now().UTC(), Nodes: c.Nodes, Clients: c.Clients, Users: c.Users,
		Duration: c.Duration.String(), Rate: c.Rate, Persist: c.Persist, Faults: faults,
		Published: len(pubs), PubFails: pubFails, Behind: behind,
	}
	byID := make(map[string]published, len(pubs))
	for _, p := range pubs {
		byID[p.ID] = p
	}
	for _, s := range subs {
		s.mu.Lock()
		seen := map[string]int{}
		type window struct{ lo, hi string }
		var windows []window
		prev := s.start
		for i, r := range s.got {
			if r.Type == sse.TypeConnected {
				continue // a marker
			}
			if r.Type == sse.TypeResync {
				// The resync moves the client to the broker's head. When the
				// history was lost entirely (Redis restarted empty), that
				// head is its starting id, before the client's position:
				// what the client may have missed is then everything up to
				// the next event it receives.
				sum.ResyncEvents++
				hi := r.ID
				if sse.CompareIDs(r.ID, prev) <= 0 {
					hi = ""
					for _, n := range s.got[i+1:] {
						if n.Type == "chaos" {
							hi = n.ID
							break
						}
					}
				}
				windows = append(windows, window{prev, hi})
				prev = r.ID
				continue
			}
			if sse.CompareIDs(r.ID, prev) <= 0 {
				if seen[r.ID] > 0 {
					sum.Duplicates++
				} else {
					sum.OutOfOrder++
				}
				if len(sum.Diagnoses) < 5 {
					sum.Diagnoses = append(sum.Diagnoses, diagnose(s, i))
				}
			}
			seen[r.ID]++
			if seen[r.ID] == 1 {
				p, ok := byID[r.ID]
				switch {
				case !ok:
					sum.Orphans++
				case p.User != "" && p.User != s.user:
					sum.Misrouted++
				}
			}
			if sse.CompareIDs(r.ID, prev) > 0 {
				prev = r.ID
			}
		}
		for _, p := range pubs {
			if sse.CompareIDs(p.ID, s.start) <= 0 || (p.User != "" && p.User != s.user) {
				continue
			}
			sum.Expected++
			if seen[p.ID] > 0 {
				sum.Delivered++
				continue
			}
			announced := false
			for _, w := range windows {
				// hi "" is open-ended: nothing came after the resync.
				if sse.CompareIDs(p.ID, w.lo) > 0 && (w.hi == "" || sse.CompareIDs(p.ID, w.hi) <= 0) {
					announced = true
					break
				}
			}
			if announced {
				sum.Resynced++
			} else {
				sum.Lost++
			}
		}
		sum.Resumes += s.resumes
		s.mu.Unlock()
	}
	add := func(ok bool, format string, args ...any) {
		if !ok {
			sum.Problems = append(sum.Problems, fmt.Sprintf(format, args...))
		}
	}
	add(sum.Lost == 0, "%d events lost without a resync", sum.Lost)
	add(sum.Duplicates == 0, "%d duplicates", sum.Duplicates)
	add(sum.OutOfOrder == 0, "%d events out of order", sum.OutOfOrder)
	add(sum.Misrouted == 0, "%d events delivered to the wrong user", sum.Misrouted)
	add(sum.Behind == 0, "%d clients without the last event at the end", sum.Behind)
	add(len(faults) > 0, "no fault was injected")
	sum.Verdict = "pass"
	if len(sum.Problems) > 0 {
		sum.Verdict = "FAIL"
	}
	return sum
}

// markdown renders the summary for docs/RELIABILITY.md.
func (s summary) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Chaos — %s, verdict: **%s**\n\n", s.Started.Format("2006-01-02 15:04 UTC"), s.Verdict)
	history := "with an append-only file, so that a restart keeps the history"
	if !s.Persist {
		history = "without persistence, so that a restart empties the history"
	}
	fmt.Fprintf(&b, "Redis %s. ", history)
	fmt.Fprintf(&b, "%d ssehub nodes on one Redis; %d clients (%d users) reconnecting to a random live node; %.0f events/s for %s (half to everyone, half to one user). Faults: %s.\n\n",
		s.Nodes, s.Clients, s.Users, s.Rate, s.Duration, strings.Join(s.Faults, ", "))
	fmt.Fprintf(&b, "| published | expected deliveries | delivered | resynced | lost | duplicates | out of order | misrouted | behind at the end |\n|---|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| %d | %d | %d | %d | %d | %d | %d | %d | %d |\n\n", s.Published, s.Expected, s.Delivered, s.Resynced, s.Lost, s.Duplicates, s.OutOfOrder, s.Misrouted, s.Behind)
	fmt.Fprintf(&b, "%d publish attempts failed during faults and were retried on another node; %d events arrived that the publisher had no id for (a publish whose answer died with its node). Clients resumed with Last-Event-ID %d times; %d resync events.\n",
		s.PubFails, s.Orphans, s.Resumes, s.ResyncEvents)
	if len(s.Problems) > 0 {
		fmt.Fprintf(&b, "\nProblems: %s.\n", strings.Join(s.Problems, "; "))
	}
	for _, d := range s.Diagnoses {
		fmt.Fprintf(&b, "\n- %s\n", d)
	}
	return b.String()
}

// diagnose describes what client s saw around its i-th record.
func diagnose(s *subscriber, i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "user %s, record %d:", s.user, i)
	for j := max(0, i-6); j <= min(len(s.got)-1, i+2); j++ {
		r := s.got[j]
		switch r.Type {
		case sse.TypeConnected:
			fmt.Fprintf(&b, " [connected id=%q %s]", r.ID, r.Note)
		default:
			fmt.Fprintf(&b, " %s(%s seq %d)", r.Type, r.ID, r.Seq)
		}
	}
	return b.String()
}
