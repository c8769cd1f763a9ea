package ssekit

import (
	"testing"
	"time"
)

// TestPresenceOfflineTimerSpentWhenBack: an offline timer that fires while
// the user is back (a stream registered that changed has not seen yet) is
// spent: when that stream ends before changed runs for it, the end starts
// a new timer, so that the user is still reported offline and leaves the
// map. Before, the spent timer stayed on the user, no timer ever started
// again, and the user stayed online for good.
func TestPresenceOfflineTimerSpentWhenBack(t *testing.T) {
	var got []bool
	h, err := New(Config{PresenceDebounce: time.Hour, HeartbeatInterval: -1, MaxStreamAge: -1,
		OnPresence: func(ch PresenceChange) { got = append(got, ch.Online) }}) // under presence.mu
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p := h.presence
	follower := func(id string) *follower {
		c, err := newFollower(id, "u", nil, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := follower("a")
	if _, ok := h.reg.add(a, -1, -1); !ok {
		t.Fatal("add a")
	}
	p.changed(a)
	h.reg.remove(a)
	p.changed(a)
	p.mu.Lock()
	u := p.online["u"]
	spent := u.timer
	if spent == nil || !spent.Stop() {
		p.mu.Unlock()
		t.Fatal("no offline timer after the last stream ended")
	}
	p.timers.Done() // stopped: its function is called below instead
	p.mu.Unlock()

	b := follower("b")
	if _, ok := h.reg.add(b, -1, -1); !ok {
		t.Fatal("add b")
	}
	p.offline("u", u) // the timer fires while b is registered
	h.reg.remove(b)
	p.changed(b) // b's start and end, both after its end
	p.changed(b)

	p.mu.Lock()
	defer p.mu.Unlock()
	if cur := p.online["u"]; cur == nil || cur.timer == nil || cur.timer == spent {
		t.Fatalf("after the user came back and left again, no offline timer runs (got %v): it would stay online for good", got)
	}
	if len(got) != 1 || !got[0] {
		t.Fatalf("changes %v, want online once so far", got)
	}
}
