package isolation

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

// drainAll takes what every open stream read so far, so that none holds
// a run's worth of events, and a stream that ended by itself is found at
// the next step.
func (r *run) drainAll() {
	for _, s := range r.streams {
		evs, ended, err := s.take()
		r.process(s, evs)
		if ended && !s.lin.broken {
			r.bad.add("stream ended", "%s ended by itself: %v", r.name(s), err)
			s.lin.broken = true
		}
	}
}

// process checks the form of the events s read and counts them.
func (r *run) process(s *stream, evs []sseclient.Event) {
	for _, ev := range evs {
		if ev.ID != "" {
			s.lastID = ev.ID
		}
		if !s.opened {
			if ev.Type != ssekit.TypeConnected {
				r.bad.add("form", "%s: first event %q, want connected", r.name(s), ev.Type)
			}
			var d struct {
				ClientID string `json:"client_id"`
				Resumed  bool   `json:"resumed"`
			}
			if err := ev.Decode(&d); err != nil || d.ClientID == "" {
				r.bad.add("form", "%s: connected data %q: %v", r.name(s), ev.Data, err)
			}
			s.opened, s.clientID, s.resumed = true, d.ClientID, d.Resumed
			if s.replayed != nil && !d.Resumed {
				r.bad.add("resume", "%s: connected says resumed=false on a resume", r.name(s))
			}
			continue
		}
		switch ev.Type {
		case "p":
			seq, err := strconv.Atoi(string(ev.Data))
			if err != nil {
				r.bad.add("form", "%s: event data %q", r.name(s), ev.Data)
				continue
			}
			s.got[seq]++
			s.order = append(s.order, seq)
			s.ids = append(s.ids, ev.ID)
			r.res.Delivered++
		case ssekit.TypeHeartbeat:
		case ssekit.TypeResync:
			r.bad.add("resync", "%s: resync %s (nothing was trimmed)", r.name(s), ev.Data)
		default:
			r.bad.add("form", "%s: unexpected %q event %s", r.name(s), ev.Type, ev.Data)
		}
	}
}

// await takes s's events until cond holds; it reports false, and a
// problem, if the stream ends or nothing more comes within
// ssetest.Patience.
func (r *run) await(s *stream, what string, cond func() bool) bool {
	timer := time.NewTimer(ssetest.Patience)
	defer timer.Stop()
	for {
		evs, ended, err := s.take()
		r.process(s, evs)
		switch {
		case cond():
			return true
		case ended:
			r.bad.add("stream ended", "%s ended before %s: %v", r.name(s), what, err)
			return false
		}
		select {
		case <-s.wake:
		case <-timer.C:
			r.bad.add("missing", "%s: no %s within %v", r.name(s), what, ssetest.Patience)
			return false
		}
	}
}

// name describes s in a message.
func (r *run) name(s *stream) string {
	kind := "fresh"
	if s.replayed != nil {
		kind = "resumed"
	}
	return fmt.Sprintf("stream %d (%s, %q, node %d, channels %q)", s.n, kind, s.who.key, s.node, s.channels)
}

// verify checks that s received exactly what it was sent: each event of
// its channels published while it was open, each event addressed to its
// id, and, for a resume, each event published since its lineage's last
// stream closed in a channel that both followed; each once.
func (r *run) verify(s *stream) {
	r.logMu.Lock()
	log := r.log
	r.logMu.Unlock()
	expected := map[int]bool{}
	// A resume's replay window holds events of the channels it resumed
	// that are also in a channel it did not follow before: reported
	// apart, for they are missed through another path (a replay that
	// takes the new channel's head for proof that it wrote them).
	alsoNew := map[int]bool{}
	for seq := s.start; seq < s.end; seq++ {
		if p := log[seq]; addressesAny(p, s.follows) || slices.Contains(p.clients, s.clientID) {
			expected[seq] = true
		}
	}
	if s.replayed != nil {
		fresh := map[string]bool{}
		for ch := range s.follows {
			if !s.replayed[ch] {
				fresh[ch] = true
			}
		}
		for seq := s.replayFrom; seq < s.start; seq++ {
			if p := log[seq]; addressesAny(p, s.replayed) {
				expected[seq] = true
				if addressesAny(p, fresh) {
					alsoNew[seq] = true
				}
			}
		}
	}
	for _, seq := range slices.Sorted(maps.Keys(s.got)) {
		n := s.got[seq]
		if seq < 0 || seq >= len(log) {
			r.bad.add("extra", "%s received seq %d, which was never published", r.name(s), seq)
			continue
		}
		p := log[seq]
		switch {
		case !expected[seq] && !p.failed:
			kind, why := r.whyNot(s, seq, p)
			r.bad.add(kind, "%s received publish %d %s: %s", r.name(s), seq, describe(p), why)
		case n > 1:
			paths := len(followed(p, s.follows))
			if slices.Contains(p.clients, s.clientID) {
				paths++
			}
			kind := "duplicate (one path)"
			if paths > 1 {
				kind = "duplicate (publish to several channels it follows)"
			}
			r.bad.add(kind, "%s received publish %d %s %d times; it follows %q of its channels", r.name(s), seq, describe(p), n, followed(p, s.follows))
		}
	}
	for _, seq := range slices.Sorted(maps.Keys(expected)) {
		if s.got[seq] > 0 || log[seq].failed {
			continue
		}
		p := log[seq]
		switch {
		case alsoNew[seq]:
			r.bad.add("missing (replay; also in a channel new to the stream)", "%s did not replay publish %d %s, published while its lineage was away, in channels it resumed (%q) and in one it did not follow before",
				r.name(s), seq, describe(p), followed(p, s.replayed))
		case seq < s.start:
			r.bad.add("missing (replay)", "%s did not replay publish %d %s, published while its lineage was away", r.name(s), seq, describe(p))
		case s.replayed != nil:
			r.bad.add("missing (live, in a resumed stream)", "%s did not receive publish %d %s, published while it was open (from %d)", r.name(s), seq, describe(p), s.start)
		default:
			r.bad.add("missing (live)", "%s did not receive publish %d %s, published while it was open (from %d)", r.name(s), seq, describe(p), s.start)
		}
	}
	// Positions never go back: compare successive inline ids (an id with
	// a cursor carries only the positions that changed since it).
	for i := 1; i < len(s.ids); i++ {
		prev, next := s.ids[i-1], s.ids[i]
		_, c1, ok1 := ssetest.Positions(prev)
		_, c2, ok2 := ssetest.Positions(next)
		if prev == next || !ok1 || !ok2 || c1 != "" || c2 != "" {
			continue
		}
		if !ssetest.Moved(prev, next) {
			r.bad.add("order", "%s: id %s after %s (publishes %d then %d)", r.name(s), next, prev, s.order[i-1], s.order[i])
		}
	}
}

// whyNot says why s should not have received p.
func (r *run) whyNot(s *stream, seq int, p pub) (kind, why string) {
	who := identify(s.who.key)
	var reasons []string
	kind = "extra"
	if len(followed(p, s.follows)) == 0 {
		for _, ch := range p.channels {
			if t, ok := strings.CutPrefix(ch, "tenant:"); ok && t != who.Tenant {
				kind = "extra: another tenant's"
				reasons = append(reasons, fmt.Sprintf("its tenant is %q, not %q", who.Tenant, t))
			}
			if t, ok := strings.CutPrefix(ch, "topic:"); ok && !allowed(who, t) {
				kind = "extra: a topic it may not follow"
				reasons = append(reasons, fmt.Sprintf("it may not follow topic %q", t))
			}
		}
	}
	switch {
	case seq < s.start && s.replayed == nil:
		reasons = append(reasons, fmt.Sprintf("published before it connected (at %d)", s.start))
	case s.replayed != nil && seq < s.replayFrom:
		reasons = append(reasons, fmt.Sprintf("published before its lineage's last stream closed (at %d)", s.replayFrom))
	case seq < s.start:
		reasons = append(reasons, "published while it was away, in none of the channels it resumed")
	case seq >= s.end:
		reasons = append(reasons, "published after it closed")
	default:
		reasons = append(reasons, "addressed to none of its channels nor to its id "+s.clientID)
	}
	return kind, strings.Join(reasons, "; ")
}

// followed returns the channels of p that follows has.
func followed(p pub, follows map[string]bool) []string {
	var out []string
	for _, ch := range p.channels {
		if follows[ch] {
			out = append(out, ch)
		}
	}
	return out
}

func addressesAny(p pub, channels map[string]bool) bool {
	for _, ch := range p.channels {
		if channels[ch] {
			return true
		}
	}
	return false
}

func describe(p pub) string {
	s := fmt.Sprintf("to %q", p.channels)
	if len(p.clients) > 0 {
		s += fmt.Sprintf(" and clients %q", p.clients)
	}
	if p.marker {
		s += " (a marker)"
	}
	return s
}

// problems collects a run's failures: the first ones in full, and counts
// by kind. Safe for concurrent use (publishers and the authorizer report
// too).
type problems struct {
	mu    sync.Mutex
	kinds map[string]int
	first []string
}

const maxReported = 40

func (p *problems) add(kind, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.kinds[kind]++
	if len(p.first) < maxReported {
		p.first = append(p.first, kind+": "+fmt.Sprintf(format, args...))
	}
}

func (p *problems) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.kinds {
		n += c
	}
	return n
}

// report fails t with the problems, if any.
func (p *problems) report(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.kinds) == 0 {
		return
	}
	for _, msg := range p.first {
		t.Error(msg)
	}
	var counts []string
	for _, k := range slices.Sorted(maps.Keys(p.kinds)) {
		counts = append(counts, fmt.Sprintf("%s: %d", k, p.kinds[k]))
	}
	t.Errorf("isolation: problems by kind (the first %d above): %s", maxReported, strings.Join(counts, "; "))
}
