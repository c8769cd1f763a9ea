package main

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ssekit/sse/sseclient"
)

// feed is a client's view built by hand: the events go through handle, as
// a stream's would.
type feed struct {
	t *testing.T
	s *subscriber
	a int64 // the position in everyone's channel
	u int64 // in the user's
}

func newFeed(t *testing.T, user string) *feed {
	f := &feed{t: t, s: &subscriber{user: user, home: -1}, a: 100, u: 100}
	f.send("connected", f.id(), `{"resumed":false}`)
	return f
}

func (f *feed) id() string { return fmt.Sprintf("a%d-0.u%d-0", f.a, f.u) }

func (f *feed) send(typ, id, data string) {
	f.t.Helper()
	if err := f.s.handle(sseclient.Event{Type: typ, ID: id, Data: []byte(data)}); err != nil {
		f.t.Fatal(err)
	}
}

// event delivers p's attempt att, moving the position of p's channel.
func (f *feed) event(p pub, att int) {
	f.t.Helper()
	if p.To == "all" {
		f.a++
	} else {
		f.u++
	}
	raw, _ := json.Marshal(payload{Seq: p.Seq, Attempt: att, To: p.To})
	f.send("chaos", f.id(), string(raw))
}

// TestAccount checks the accounting on one client of user "u1": what it
// must count as delivered, lost, resynced, a duplicate, an orphan, out of
// order and misrouted.
func TestAccount(t *testing.T) {
	f := newFeed(t, "u1")
	t0 := time.Now().Add(time.Millisecond)
	at := func(k int) time.Time { return t0.Add(time.Duration(k) * time.Millisecond) }
	pubs := []pub{
		{Seq: 1, To: "all", Attempt: 0, Start: at(1), Done: at(2)},
		{Seq: 2, To: "u1", Attempt: 1, Start: at(3), Done: at(4)}, // attempt 0 an orphan
		{Seq: 3, To: "all", Attempt: 0, Start: at(5), Done: at(6)},
		{Seq: 4, To: "u2", Attempt: 0, Start: at(7), Done: at(8)}, // another user's
		{Seq: 5, To: "u1", Attempt: 0, Start: at(9), Done: at(10)},
		{Seq: 6, To: "all", Attempt: 0, Start: at(11), Done: at(12)},
		{Seq: 7, To: "all", Attempt: 0, Start: at(13), Done: at(14)},
	}
	f.event(pubs[0], 0)
	f.event(pubs[1], 0) // the orphan
	f.event(pubs[1], 1)
	f.event(pubs[0], 0) // a duplicate, out of order
	// seq 5 is missing but announced by a resync arriving after its
	// publish; seq 7 is lost.
	time.Sleep(time.Until(at(15)))
	f.u++
	f.send("resync", f.id(), `{"channels":["user"]}`)
	f.event(pubs[5], 0)
	f.event(pubs[2], 0) // out of order
	f.event(pubs[3], 0) // misrouted

	got, diags, _ := account([]*subscriber{f.s}, pubs, 10)
	want := tally{
		Expected: 6, Delivered: 4, Resynced: 1, Lost: 1, Duplicates: 1, OutOfOrder: 1, Misrouted: 1,
		Orphans: 1, OrphanPublishes: 1, RetriedSeqTwice: 1, ResyncEvents: 1, Connections: 1,
	}
	if got != want {
		t.Errorf("tally\n got %+v\nwant %+v", got, want)
	}
	if len(diags) == 0 {
		t.Error("no diagnosis")
	}
	for _, d := range diags {
		t.Log(d)
	}
}

// TestAccountAmbiguous checks that an event published before the client's
// first connected event arrived is neither expected nor lost.
func TestAccountAmbiguous(t *testing.T) {
	early := pub{Seq: 1, To: "all", Attempt: 0, Start: time.Now().Add(-time.Second), Done: time.Now()}
	f := newFeed(t, "u1")
	got, _, _ := account([]*subscriber{f.s}, []pub{early}, 10)
	if got.Ambiguous != 1 || got.Expected != 0 || got.Lost != 0 {
		t.Errorf("tally %+v, want 1 ambiguous, none expected", got)
	}
}

// TestCaughtUp checks that a client is caught up only with both of its
// channels' accepted markers, or a resync after a missing one.
func TestCaughtUp(t *testing.T) {
	f := newFeed(t, "u1")
	all := pub{Seq: 1, To: "all", End: true, Attempt: 1, Start: time.Now(), Done: time.Now()}
	user := pub{Seq: 2, To: "u1", End: true, Attempt: 0, Start: time.Now(), Done: time.Now()}
	f.event(all, 0) // an orphan of the marker: not enough
	f.event(user, 0)
	if f.s.caughtUp([2]pub{all, user}) {
		t.Fatal("caught up on an orphan marker")
	}
	f.event(all, 1)
	if !f.s.caughtUp([2]pub{all, user}) {
		t.Fatal("not caught up with both markers")
	}
}

// TestIDsBack checks that an event whose id does not move past the last
// one is out of order even when its seq rises, and that a resync whose id
// goes back is counted apart.
func TestIDsBack(t *testing.T) {
	f := newFeed(t, "u1")
	now := time.Now()
	f.event(pub{Seq: 1, To: "all", Start: now, Done: now}, 0)
	f.a -= 2
	f.event(pub{Seq: 2, To: "all", Start: now, Done: now}, 0) // a back to 100
	f.u -= 5
	f.send("resync", f.id(), `{"channels":["user"]}`)
	got, _, _ := account([]*subscriber{f.s}, nil, 10)
	if got.OutOfOrder != 1 || got.ResyncBack != 1 {
		t.Errorf("out of order %d, resync back %d; want 1 and 1", got.OutOfOrder, got.ResyncBack)
	}
}
