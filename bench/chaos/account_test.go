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
	t  *testing.T
	s  *subscriber
	a  int64            // the position in everyone's channel
	u  int64            // in the user's
	at map[int64]string // the id each seq was last delivered with
}

func newFeed(t *testing.T, user string) *feed {
	f := &feed{t: t, s: &subscriber{user: user, home: -1}, a: 100, u: 100, at: map[int64]string{}}
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

// event delivers a stored copy of p, the next event of p's channel: the
// first, or another the hub stored for a retry.
func (f *feed) event(p pub) {
	f.t.Helper()
	if p.To == "all" {
		f.a++
	} else {
		f.u++
	}
	f.at[p.Seq] = f.id()
	f.deliver(p, f.id())
}

// again delivers p once more at the id it was last delivered with: the
// same stored event twice.
func (f *feed) again(p pub) {
	f.t.Helper()
	f.deliver(p, f.at[p.Seq])
}

func (f *feed) deliver(p pub, id string) {
	f.t.Helper()
	raw, _ := json.Marshal(payload{Seq: p.Seq, To: p.To})
	f.send("chaos", id, string(raw))
}

// TestAccount checks the accounting on one client of user "u1": what it
// must count as delivered, lost, resynced, a duplicate, an unattributed
// copy, out of order and misrouted.
func TestAccount(t *testing.T) {
	f := newFeed(t, "u1")
	t0 := time.Now().Add(time.Millisecond)
	at := func(k int) time.Time { return t0.Add(time.Duration(k) * time.Millisecond) }
	pubs := []pub{
		{Seq: 1, To: "all", Attempt: 0, Start: at(1), Done: at(2)},
		{Seq: 2, To: "u1", Attempt: 1, Start: at(3), Done: at(4)}, // attempt 0 stored too
		{Seq: 3, To: "all", Attempt: 0, Start: at(5), Done: at(6)},
		{Seq: 4, To: "u2", Attempt: 0, Start: at(7), Done: at(8)}, // another user's
		{Seq: 5, To: "u1", Attempt: 0, Start: at(9), Done: at(10)},
		{Seq: 6, To: "all", Attempt: 0, Start: at(11), Done: at(12)},
		{Seq: 7, To: "all", Attempt: 0, Start: at(13), Done: at(14)},
	}
	f.event(pubs[0])
	f.event(pubs[1]) // attempt 0's copy
	f.event(pubs[1]) // the retry's, stored again: unattributed
	f.again(pubs[0]) // a duplicate, whose id does not move: out of order too
	// seq 5 is missing but announced by a resync arriving after its
	// publish; seq 7 is lost.
	time.Sleep(time.Until(at(15)))
	f.u++
	f.send("resync", f.id(), `{"channels":["user"]}`)
	f.event(pubs[5])
	f.event(pubs[2]) // out of order
	f.event(pubs[3]) // misrouted

	got, diags, twice := account([]*subscriber{f.s}, pubs, 10)
	want := tally{
		Expected: 6, Delivered: 4, Resynced: 1, Lost: 1, Duplicates: 1, OutOfOrder: 2, Misrouted: 1,
		Unattributed: 1, UnattributedPublishes: 1, ResyncEvents: 1, Connections: 1,
	}
	if got != want {
		t.Errorf("tally\n got %+v\nwant %+v", got, want)
	}
	if len(twice) != 1 || twice[0] != 2 {
		t.Errorf("stored twice: %v, want [2]", twice)
	}
	if len(diags) == 0 {
		t.Error("no diagnosis")
	}
	for _, d := range diags {
		t.Log(d)
	}
}

// TestAccountLateCopy checks that a second stored copy of a publish that
// arrives after a later publish of its channel (an attempt stored after
// the retry that was answered) is unattributed, not out of order; and
// that a seq whose first delivery goes back is out of order.
func TestAccountLateCopy(t *testing.T) {
	f := newFeed(t, "u1")
	now := time.Now().Add(time.Millisecond)
	p1 := pub{Seq: 1, To: "all", Attempt: 1, Start: now, Done: now}
	p2 := pub{Seq: 2, To: "all", Attempt: 0, Start: now, Done: now}
	p3 := pub{Seq: 3, To: "all", Attempt: 0, Start: now, Done: now}
	p4 := pub{Seq: 4, To: "all", Attempt: 0, Start: now, Done: now}
	time.Sleep(time.Until(now))
	f.event(p1)
	f.event(p2)
	f.event(p1) // a late copy of seq 1
	f.event(p4)
	f.event(p3) // first delivered after seq 4
	got, _, twice := account([]*subscriber{f.s}, []pub{p1, p2, p3, p4}, 10)
	if got.Unattributed != 1 || got.Duplicates != 0 || got.OutOfOrder != 1 || len(twice) != 1 || twice[0] != 1 {
		t.Errorf("tally %+v, stored twice %v; want 1 unattributed (seq 1), no duplicate, 1 out of order", got, twice)
	}
}

// TestAccountWithoutPosition checks that a seq delivered again with an id
// that does not carry its channel's position, so that the copies cannot
// be told apart, counts as a duplicate: a fault, never excused.
func TestAccountWithoutPosition(t *testing.T) {
	f := newFeed(t, "u1")
	now := time.Now()
	p := pub{Seq: 1, To: "all", Attempt: 0, Start: now, Done: now}
	f.event(p)
	f.deliver(p, "u200-0")
	got, _, _ := account([]*subscriber{f.s}, []pub{p}, 10)
	if got.Duplicates != 1 || got.Unattributed != 0 {
		t.Errorf("tally %+v, want 1 duplicate, none unattributed", got)
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
	f.event(user)
	if f.s.caughtUp([2]pub{all, user}) {
		t.Fatal("caught up without everyone's marker")
	}
	f.event(all)
	if !f.s.caughtUp([2]pub{all, user}) {
		t.Fatal("not caught up with both markers")
	}
	if givenUp := (pub{Seq: 1, To: "all", End: true, Attempt: -1}); f.s.caughtUp([2]pub{givenUp, user}) {
		t.Fatal("caught up on a marker that was never accepted")
	}
}

// TestIDsBack checks that an event whose id does not move past the last
// one is out of order even when its seq rises, and that a resync whose id
// goes back is counted apart.
func TestIDsBack(t *testing.T) {
	f := newFeed(t, "u1")
	now := time.Now()
	f.event(pub{Seq: 1, To: "all", Start: now, Done: now})
	f.a -= 2
	f.event(pub{Seq: 2, To: "all", Start: now, Done: now}) // a back to 100
	f.u -= 5
	f.send("resync", f.id(), `{"channels":["user"]}`)
	got, _, _ := account([]*subscriber{f.s}, nil, 10)
	if got.OutOfOrder != 1 || got.ResyncBack != 1 {
		t.Errorf("out of order %d, resync back %d; want 1 and 1", got.OutOfOrder, got.ResyncBack)
	}
}
