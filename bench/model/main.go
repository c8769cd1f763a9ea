// Command model is a paper model of ssehub at a scale this machine cannot
// run: a number of nodes and connections, on a Redis Cluster, from the
// per-operation costs measured here (docs/cluster.md says how each was
// measured). It prints, per node and per Redis master, the events read,
// the Redis work, the memory, and the load of a reconnect storm when one
// node dies — for the per-channel design, and for the one shared log it
// replaced, side by side.
//
//	go run ./bench/model                       # 100 nodes, 10 M connections
//	go run ./bench/model -nodes 20 -conns 1e6  # another scale
//
// Every cost is a flag, so a measurement on other hardware can replace
// the defaults.
package main

import (
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
)

// costs are the measured unit costs (see docs/cluster.md, "Model").
type costs struct {
	appendUS     float64 // Redis CPU per channel append (the publish script), µs
	readUS       float64 // Redis CPU per history page read (a resume), µs
	headUS       float64 // Redis CPU per head read, µs
	subscribeUS  float64 // Redis CPU per SSUBSCRIBE, µs
	fanoutUS     float64 // Redis CPU per Pub/Sub message per subscriber, µs
	channelBytes float64 // Redis memory of a channel holding one recent event, bytes
	eventBytes   float64 // Redis memory per further kept event, bytes
	lastBytes    float64 // Redis memory of a channel's remembered position, bytes
	dedupeBytes  float64 // Redis memory of a publish's dedupe key, bytes
	dedupeSecs   float64 // how long a dedupe key lives (DedupeWindow), seconds
	streamKiB    float64 // hub memory per idle stream, KiB
	deliveryUS   float64 // hub CPU per delivery of a single event (its own write), µs
	resumeReads  float64 // history pages read per resume (one per channel)
	entryReadUS  float64 // Redis CPU per entry an XRANGE returns, µs
}

func main() {
	var c costs
	nodes := flag.Int("nodes", 100, "hub nodes")
	conns := flag.Float64("conns", 10e6, "open streams")
	perUser := flag.Float64("streams-per-user", 1.5, "streams (tabs, devices) per connected user")
	perMin := flag.Float64("events-per-user-minute", 1, "events to each user per minute")
	bcastMin := flag.Float64("broadcasts-per-minute", 1, "events to everyone per minute")
	masters := flag.Int("masters", 10, "Redis Cluster masters")
	ageMin := flag.Float64("history-minutes", 10, "how long a channel keeps its events (MaxAge)")
	retry := flag.Float64("retry-seconds", 3, "the retry hint: dead node's clients come back over 1–2× of it")
	flag.Float64Var(&c.appendUS, "append-us", 20, "Redis CPU per channel append, µs")
	flag.Float64Var(&c.readUS, "read-us", 6, "Redis CPU per history page read, µs")
	flag.Float64Var(&c.headUS, "head-us", 5, "Redis CPU per head read, µs")
	flag.Float64Var(&c.subscribeUS, "subscribe-us", 2, "Redis CPU per SSUBSCRIBE, µs")
	flag.Float64Var(&c.fanoutUS, "fanout-us", 1, "Redis CPU per Pub/Sub message and subscriber, µs")
	flag.Float64Var(&c.channelBytes, "channel-bytes", 4784, "Redis bytes of a channel with one recent event")
	flag.Float64Var(&c.eventBytes, "event-bytes", 226, "Redis bytes per further kept event")
	flag.Float64Var(&c.lastBytes, "last-bytes", 136, "Redis bytes of a channel's remembered position")
	flag.Float64Var(&c.dedupeBytes, "dedupe-bytes", 168, "Redis bytes of a publish's dedupe key (one per channel append)")
	flag.Float64Var(&c.dedupeSecs, "dedupe-seconds", 60, "how long a dedupe key lives (DedupeWindow)")
	flag.Float64Var(&c.streamKiB, "stream-kib", 12, "hub KiB per idle stream")
	flag.Float64Var(&c.deliveryUS, "delivery-us", 20, "hub CPU per delivery of a lone event, µs")
	flag.Float64Var(&c.resumeReads, "resume-reads", 2, "history pages read per resume")
	flag.Float64Var(&c.entryReadUS, "entry-read-us", 0.52, "Redis CPU per entry an XRANGE page returns, µs")
	oldHistory := flag.Float64("old-history", 10000, "the shared log's length before (its MaxLen default)")
	flag.Parse()
	if *nodes < 2 || *masters < 1 || *conns <= 0 || *perUser < 1 {
		fmt.Fprintln(os.Stderr, "model: need -nodes ≥ 2, -masters ≥ 1, positive -conns, -streams-per-user ≥ 1")
		os.Exit(2)
	}
	n, m := float64(*nodes), float64(*masters)
	users := *conns / *perUser
	targeted := users * *perMin / 60 // events/s, each to one user
	bcast := *bcastMin / 60
	keptPerUser := *perMin * *ageMin // events each user channel keeps

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	defer w.Flush()
	row := func(what, perChannel, sharedLog string) {
		fmt.Fprintf(w, "| %s\t| %s\t| %s\t|\n", what, perChannel, sharedLog)
	}
	fmt.Fprintf(w, "%d nodes, %.3g streams of %.3g users (%.1f each), %.3g events/user/min (%.0f events/s), %.3g broadcasts/min, %d Redis masters, %.0f min of history\n\n",
		*nodes, *conns, users, *perUser, *perMin, targeted, *bcastMin, *masters, *ageMin)
	row("", "per channel (this design)", "one shared log (before)")
	row("---", "---", "---")

	// A node: its streams, what it reads, what it writes.
	streams := *conns / n
	heardPC := targeted/n + bcast
	heardLog := targeted + bcast
	row("streams per node", f(streams), f(streams))
	row("events a node reads from Redis, /s", f(heardPC), f(heardLog)+" (every event)")
	deliveries := targeted / n * *perUser
	row("deliveries per node, /s", f(deliveries), f(deliveries))
	row("hub CPU per node for deliveries", pct(deliveries*c.deliveryUS), pct(deliveries*c.deliveryUS))
	row("hub memory per node (idle streams)", gib(streams*c.streamKiB*1024), gib(streams*c.streamKiB*1024))
	row("user channels subscribed per node", f(streams / *perUser), "1 stream")

	// Redis: where the appends land, what they cost.
	appends := targeted + bcast
	row("appends per master, /s", f(appends/m), f(appends)+" on one master (one key)")
	row("Redis CPU per master for appends", pct(appends/m*c.appendUS), pct(appends*c.appendUS)+" on one master")
	row("Pub/Sub messages out per master, /s", f(targeted/m+bcast*n/m), "— (every node XREADs the one stream)")
	active := users // at one event a minute, every user has a recent event
	if *perMin**ageMin < 1 {
		active = users * *perMin * *ageMin
	}
	memPC := active*(c.channelBytes+(keptPerUser-1)*c.eventBytes) + users*c.lastBytes + appendsDedupe(targeted+bcast, c)
	// Before, the one log held its MaxLen newest events, whatever its age
	// bound: at this rate, a fraction of a second.
	memLog := min(*oldHistory, (targeted+bcast)**ageMin*60)*c.eventBytes + appendsDedupe(targeted+bcast, c)
	row("Redis memory for the history, total", gib(memPC), gib(memLog)+fmt.Sprintf(" (%.0f ms of events)", min(*oldHistory/(targeted+bcast), *ageMin*60)*1000))
	row("Redis memory per master", gib(memPC/m), gib(memLog)+" on one master")

	// One node dies: its streams resume on the others, within the retry
	// hint's jitter window.
	window := *retry // clients come back over [retry, 2·retry]
	resumes := streams
	opsPC := c.resumeReads*c.readUS + c.headUS + c.subscribeUS // pages, the new follower's head, its SSUBSCRIBE
	// Before: a resume read the shared log from the client's last event —
	// a minute ago at one event a minute — which is the whole log, when
	// the log reaches back that far at all (then it is a resync).
	readLog := min(*oldHistory, (targeted+bcast)*60 / *perMin)
	opsLog := readLog * c.entryReadUS
	covers := *oldHistory / (targeted + bcast)
	row("storm: streams resuming", f(resumes), f(resumes))
	row("storm: history events read per resume", f(keptPerUser)+" at most (its own channels)", f(readLog)+" (everyone's)")
	row("storm: Redis CPU per resume", us(opsPC), us(opsLog))
	row("storm: Redis CPU, over the 1–2× retry window", pct(resumes*opsPC/m/window)+" per master", pct(resumes*opsLog/window)+" on one master")
	row("how far back a resume reaches", fmt.Sprintf("%.0f min (each user's own events)", *ageMin), fmt.Sprintf("%.0f ms (then: resync)", covers*1000))
}

// appendsDedupe is the memory of the dedupe keys alive at a rate of
// appends a second.
func appendsDedupe(rate float64, c costs) float64 { return rate * c.dedupeSecs * c.dedupeBytes }

func f(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2f M", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1f k", v/1e3)
	case v >= 10:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// pct formats µs of CPU per second as a share of one core.
func pct(usPerSec float64) string { return fmt.Sprintf("%.1f %% of a core", usPerSec/1e4) }

func gib(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.0f MiB", b/(1<<20))
	}
	return fmt.Sprintf("%.1f MiB", b/(1<<20))
}

func us(v float64) string { return fmt.Sprintf("%.0f µs", v) }
