package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// summary is the final accounting of a run, written as JSON and Markdown.
type summary struct {
	Started      time.Time `json:"started"`
	Mode         string    `json:"mode"`  // chaos or storm
	Redis        string    `json:"redis"` // one or cluster
	Store        string    `json:"store"`
	WaitReplicas int       `json:"wait_replicas"`
	Nodes        int       `json:"nodes"`
	Clients      int       `json:"clients"`
	Users        int       `json:"users"`
	Duration     string    `json:"duration"`
	Rate         float64   `json:"rate"`
	Persist      bool      `json:"redis_persistent"`
	Faults       []string  `json:"faults"`
	FaultErrors  []string  `json:"fault_errors,omitempty"`
	// Published counts the publishes accepted (an id returned), the end
	// markers included (EndMarkers of them: one to everyone, one per user).
	Published  int `json:"published"`
	EndMarkers int `json:"end_markers"`
	PubFails   int `json:"publish_failed_attempts"`
	GivenUp    int `json:"publishes_given_up"`
	// Replayed counts the publishes whose accepted answer was a replay:
	// an earlier attempt had been stored though its answer was lost, and
	// the hub answered the retry, under the same Idempotency-Key, with
	// that attempt's id instead of storing it again. Refused counts the
	// publishes answered a 4xx (given up: no doubt), Conflicts the 422s
	// among them (a key taken for another publish; never meant).
	Replayed  int `json:"replayed"`
	Refused   int `json:"publishes_refused"`
	Conflicts int `json:"idempotency_conflicts"`
	// Dropped counts the answers the publisher dropped on purpose
	// (-lose-every): each such publish was stored, and its retry must be
	// answered as a replay.
	Dropped int `json:"answers_dropped"`
	// RateAchieved is the regular publishes (not the end markers) per
	// second over the time they were sent: under load the sequential
	// publisher falls behind -rate. PublishMs is p50/p99/max of their
	// accepted requests' time, from the request to its answer.
	RateAchieved float64    `json:"rate_achieved"`
	PublishMs    [3]float64 `json:"publish_ms"`
	tally
	// StoredTwice say, for each publish stored more than once, how the
	// answers of its attempts were lost.
	StoredTwice []string      `json:"stored_twice,omitempty"`
	Behind      int           `json:"behind"` // clients without their channels' end markers at the end
	Storm       *stormSummary `json:"storm,omitempty"`
	// Verdict is pass or FAIL; Problems say why it failed, Diagnoses show,
	// for the first faults, what the client saw.
	Verdict   string   `json:"verdict"`
	Diagnoses []string `json:"diagnoses,omitempty"`
	Problems  []string `json:"problems,omitempty"`
}

// newSummary starts the summary of run c on st.
func newSummary(c config, st store) summary {
	s := summary{
		Started: time.Now().UTC(), Mode: "chaos", Redis: c.Redis, Store: st.describe(), WaitReplicas: c.WaitReplicas,
		Nodes: c.Nodes, Clients: c.Clients, Users: c.Users, Duration: c.Duration.String(), Rate: c.Rate, Persist: c.Persist,
	}
	if c.Storm {
		s.Mode, s.Duration = "storm", "warmup "+c.Warmup.String()+", then until the storm was over"
	}
	return s
}

// finish accounts for every client's events, judges the run and writes
// the summary next to c.Summary; it returns an error if the run failed.
func finish(sum summary, subs []*subscriber, pubr *publisher, path string) error {
	pubs, ps := pubr.snapshot()
	sum.PubFails, sum.GivenUp, sum.Refused, sum.Conflicts, sum.Dropped = ps.fails, ps.givenUp, ps.refused, ps.conflicts, ps.dropped
	sum.publishStats(pubs)
	var twice []int64
	sum.tally, sum.Diagnoses, twice = account(subs, pubs, 8)
	for _, seq := range twice {
		if seq < 1 || seq > int64(len(pubs)) {
			continue
		}
		p := pubs[seq-1]
		// Every failed attempt has its failure, up to the accepted one.
		var why []string
		for att := 0; att < 1000; att++ {
			f := pubr.failure(seq, att)
			if f == "" {
				break
			}
			why = append(why, fmt.Sprintf("attempt %d: %s", att, f))
		}
		sum.StoredTwice = append(sum.StoredTwice, fmt.Sprintf("seq %d (to %s; attempt %d accepted, replayed %v): %s",
			seq, chName[p.channel()], p.Attempt, p.Replayed, cmp.Or(strings.Join(why, "; "), "no attempt failed")))
	}
	if sum.Storm != nil {
		sum.Storm.userLatencies(sum.Storm.moved)
	}
	sum.judge()
	js, _ := json.MarshalIndent(sum, "", "  ")
	if err := os.WriteFile(path+".json", append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the summary: %w", err)
	}
	md := sum.markdown()
	if err := os.WriteFile(path+".md", []byte(md), 0o644); err != nil {
		return fmt.Errorf("write the summary: %w", err)
	}
	fmt.Print(md)
	if sum.Verdict != "pass" {
		return errors.New("failed: " + strings.Join(sum.Problems, "; "))
	}
	return nil
}

// publishStats counts the accepted publishes and times them.
func (s *summary) publishStats(pubs []pub) {
	var lat []float64
	var first, last time.Time
	regular := 0
	for _, p := range pubs {
		if p.Attempt < 0 {
			continue
		}
		s.Published++
		if p.Replayed {
			s.Replayed++
		}
		if p.End {
			s.EndMarkers++
			continue
		}
		regular++
		lat = append(lat, ms(p.Done.Sub(p.Sent)))
		if first.IsZero() {
			first = p.Start
		}
		last = p.Done
	}
	s.PublishMs = quantiles(lat)
	if span := last.Sub(first).Seconds(); span > 0 {
		s.RateAchieved = float64(regular) / span
	}
}

// judge lists the problems and sets the verdict.
func (s *summary) judge() {
	add := func(ok bool, format string, args ...any) {
		if !ok {
			s.Problems = append(s.Problems, fmt.Sprintf(format, args...))
		}
	}
	add(s.Lost == 0, "%d events lost without a resync", s.Lost)
	add(s.Duplicates == 0, "%d duplicates", s.Duplicates)
	add(s.OutOfOrder == 0, "%d events out of order", s.OutOfOrder)
	add(s.ResyncBack == 0, "%d resyncs whose id went back", s.ResyncBack)
	add(s.Misrouted == 0, "%d events delivered to the wrong user", s.Misrouted)
	add(s.Behind == 0, "%d clients without their channels' end markers at the end", s.Behind)
	add(s.GivenUp == 0, "%d publishes given up", s.GivenUp)
	add(s.Unattributed == 0, "%d deliveries of %d publishes stored more than once (copies the publisher had no id for: a retry under the same Idempotency-Key was stored again)",
		s.Unattributed, s.UnattributedPublishes)
	add(s.Replayed >= s.Dropped, "%d answers dropped on purpose (the events were stored), but only %d retries answered as replays", s.Dropped, s.Replayed)
	add(s.Conflicts == 0, "%d publishes answered 422 (Idempotency-Key taken for a different publish)", s.Conflicts)
	add(s.Expected > 0, "no event was expected")
	add(len(s.FaultErrors) == 0, "faults that did not heal: %s", strings.Join(s.FaultErrors, "; "))
	add(len(s.Faults) > 0, "no fault was injected")
	if st := s.Storm; st != nil {
		add(st.Moved > 0, "the killed node had no client")
		add(st.NotLive == 0, "%d of %d moved clients did not resume and get the next event to everyone", st.NotLive, st.Moved)
		add(st.NotResumed == 0, "%d moved clients' streams did not resume", st.NotResumed)
	}
	s.Verdict = "pass"
	if len(s.Problems) > 0 {
		s.Verdict = "FAIL"
	}
}

// markdown renders the summary for docs/RELIABILITY.md.
func (s summary) markdown() string {
	var b strings.Builder
	title := "Chaos"
	if s.Mode == "storm" {
		title = "Resume storm"
	}
	fmt.Fprintf(&b, "%s — %s, verdict: **%s**\n\n", title, s.Started.Format("2006-01-02 15:04 UTC"), s.Verdict)
	fmt.Fprintf(&b, "Redis: %s. ", s.Store)
	if s.Mode == "storm" {
		fmt.Fprintf(&b, "%d ssehub nodes; %d clients (%d users) spread evenly over them, each staying on its node while it lives; %.0f events/s (half to everyone, half to one user). Faults: %s.\n\n",
			s.Nodes, s.Clients, s.Users, s.Rate, strings.Join(s.Faults, ", "))
	} else {
		fmt.Fprintf(&b, "%d ssehub nodes; %d clients (%d users) reconnecting to a random live node; %.0f events/s for %s (half to everyone, half to one user). Faults: %s.\n\n",
			s.Nodes, s.Clients, s.Users, s.Rate, s.Duration, strings.Join(s.Faults, ", "))
	}
	fmt.Fprintf(&b, "| published | expected deliveries | delivered | resynced | lost | duplicates | unattributed | out of order | misrouted | behind at the end |\n|---|---|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| %d | %d | %d | %d | %d | %d | %d | %d | %d | %d |\n\n",
		s.Published, s.Expected, s.Delivered, s.Resynced, s.Lost, s.Duplicates, s.Unattributed, s.OutOfOrder, s.Misrouted, s.Behind)
	fmt.Fprintf(&b, "Accounted per channel (everyone's, each user's): events matched to publishes by the seq in their data, seqs rising within a channel, ids never going back; an end marker to everyone and one to each user (%d in all, included above) closed every client's channels. ", s.EndMarkers)
	fmt.Fprintf(&b, "Publishes (one at a time, end markers aside): %.1f/s achieved of the %.0f/s asked; %s from request to answer (p50 / p99 / max). ", s.RateAchieved, s.Rate, phase(s.PublishMs))
	fmt.Fprintf(&b, "%d publish attempts failed during faults and were retried, under the publish's Idempotency-Key, on another node (%d given up, %d of them refused with a 4xx, %d with 422)", s.PubFails, s.GivenUp, s.Refused, s.Conflicts)
	if s.Dropped > 0 {
		fmt.Fprintf(&b, ", %d of them answers the publisher dropped on purpose (-lose-every: the event was stored)", s.Dropped)
	}
	fmt.Fprintf(&b, "; %d publishes were answered as replays (an earlier attempt had been stored though its answer was lost: stored once); %d deliveries were of %d publishes stored more than once (unattributed: a copy the publisher had no id for). ",
		s.Replayed, s.Unattributed, s.UnattributedPublishes)
	fmt.Fprintf(&b, "%d connections, %d resumed with Last-Event-ID; %d resync events (%d whose id went back); %d events published while a client's first stream was opening, %d of them delivered (once).\n",
		s.Connections, s.Resumes, s.ResyncEvents, s.ResyncBack, s.Ambiguous, s.AmbiguousDelivered)
	for _, o := range s.StoredTwice {
		fmt.Fprintf(&b, "\n- Stored twice: %s\n", o)
	}
	if s.Storm != nil {
		s.Storm.markdown(&b)
	}
	if len(s.Problems) > 0 {
		fmt.Fprintf(&b, "\nProblems: %s.\n", strings.Join(s.Problems, "; "))
	}
	for _, d := range s.Diagnoses {
		fmt.Fprintf(&b, "\n- %s\n", d)
	}
	return b.String()
}

// markdown renders the storm's measures.
func (ss *stormSummary) markdown(b *strings.Builder) {
	fmt.Fprintf(b, "\nStorm: node %d killed with %d of the clients (per node before: %v), not restarted.\n\n", ss.KilledNode, ss.Moved, ss.PerNode)
	fmt.Fprintf(b, "| clients moved | resumed on another node | time to resume all | p50 | p99 | time to resume all and get the next event to everyone | resumes in the window | Redis commands per resume |\n|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(b, "| %d | %d | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %d | %.1f |\n\n",
		ss.Moved, ss.Resumed, ss.TimeToResumeAllMs, ss.ResumeP50Ms, ss.ResumeP99Ms, ss.TimeToLiveAllMs, ss.ResumesInWindow, ss.PerResumeTotal)
	fmt.Fprintf(b, "The machine's CPU (%d cores, shared with the Redis and ssehub processes, this program's clients and anyone else's work) was %.0f%% busy meanwhile. ", runtime.NumCPU(), ss.CPUBusy)
	fmt.Fprintf(b, "The phases of a move (p50 / p99 / max): from the kill until the client saw its stream end %s; the reconnection delay it drew then, from [0, retry = 500 ms], %s; from the end of that delay until another node answered 200 (the dial, and the hub's resume, which reads the first page of each channel before it answers) %s; then until the connected event arrived %s.\n\n",
		phase(ss.Dropped), phase(ss.Delay), phase(ss.Redial), phase(ss.Resume))
	fmt.Fprintf(b, "Their user channels: %d moved clients got an event to their user published after they resumed (at most %.0f ms from publish to receipt), and %d their user's end marker (at most %.0f ms).\n\n",
		ss.UserEvents, ss.UserLatencyMaxMs, ss.Markers, ss.MarkerLatencyMs)
	fmt.Fprintf(b, "Redis commands (INFO commandstats, summed over the masters) from the kill until the storm was over (%.0f ms), less the background (publishing, presence) at the rate of the %.0f ms before the kill, per resume:\n\n",
		ss.WindowMs, ss.BaselineWindowMs)
	b.WriteString("| command | calls in the window | per resume |\n|---|---|---|\n")
	names := slices.SortedFunc(maps.Keys(ss.Commands), func(x, y string) int {
		return cmp.Or(cmp.Compare(ss.Commands[y], ss.Commands[x]), cmp.Compare(x, y))
	})
	for _, name := range names {
		per := "—"
		if v, ok := ss.PerResume[name]; ok {
			per = fmt.Sprintf("%.2f", v)
		}
		fmt.Fprintf(b, "| %s | %d | %s |\n", name, ss.Commands[name], per)
	}
}

// phase renders p50 / p99 / max.
func phase(q [3]float64) string {
	return fmt.Sprintf("%.0f / %.0f / %.0f ms", q[0], q[1], q[2])
}
