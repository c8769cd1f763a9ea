package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// streamWorker runs a worker over in-memory connections, one per entry of
// users, feeds each the events of its entry in streams (as a server would
// write them), and returns the worker's accounting against exp.
func streamWorker(t *testing.T, users []uint64, streams [][]payload, exp expectation) workerResult {
	t.Helper()
	w := newWorker(workerConfig{Users: 100})
	var servers []net.Conn
	for i, u := range users {
		c, srv := net.Pipe()
		servers = append(servers, srv)
		s := &subscriber{c: c, body: c, sh: &w.shards[i%nShards]}
		s.tr.user = u
		w.subs = append(w.subs, s)
		w.wg.Add(1)
		go w.read(s)
	}
	t.Cleanup(func() {
		for _, c := range servers {
			c.Close()
		}
	})
	for i, evs := range streams {
		// A net.Pipe write returns once the reader has the bytes, and the
		// parser handles what it has before it reads again: after the
		// writes, Close accounts every event.
		fmt.Fprint(servers[i], "data: {\"connected\":true}\n\n")
		for _, pl := range evs {
			fmt.Fprintf(servers[i], "event: bench\ndata: %s\n\n", appendPayload(nil, pl, 0))
		}
	}
	if _, err := w.Drain(exp, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	r, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// to returns user u's targeted event n, sent by publisher 0 as its s-th.
func to(u, n, s uint64) payload { return payload{g: s, p: 0, s: s, t: 1, u: u, n: n} }

// TestTargetedAccounting checks that a stream's accounting finds a
// misdelivery, a loss and a duplicate, each on its own, and nothing in a
// clean run: two users, user 7 with two connections, user 8 with one.
func TestTargetedAccounting(t *testing.T) {
	t.Parallel()
	users := []uint64{7, 7, 8}
	exp := expectation{PerUser: make([]int64, 9)}
	exp.PerUser[7], exp.PerUser[8] = 2, 1
	clean := func() [][]payload {
		return [][]payload{
			{to(7, 1, 1), to(7, 2, 3)},
			{to(7, 1, 1), to(7, 2, 3)},
			{to(8, 1, 2)},
		}
	}
	type counts struct{ unique, lost, misdelivered, dups, connsWithLoss int64 }
	tests := []struct {
		name   string
		edit   func([][]payload) [][]payload
		expect expectation
		want   counts
	}{
		{"clean", func(s [][]payload) [][]payload { return s }, exp, counts{5, 0, 0, 0, 0}},
		{"misdelivery", func(s [][]payload) [][]payload {
			// user 8's event also reaches a stream of user 7
			s[1] = append(s[1], to(8, 1, 2))
			return s
		}, exp, counts{5, 0, 1, 0, 0}},
		{"loss", func(s [][]payload) [][]payload {
			s[0] = s[0][:1] // the first stream of user 7 misses n=2
			return s
		}, exp, counts{4, 1, 0, 0, 1}},
		{"duplicate", func(s [][]payload) [][]payload {
			s[2] = append(s[2], to(8, 1, 2))
			return s
		}, exp, counts{5, 0, 0, 1, 0}},
		{"misdelivery in place of the rightful event", func(s [][]payload) [][]payload {
			// the stream of user 8 gets user 7's event instead of its own
			s[2] = []payload{to(7, 1, 1)}
			return s
		}, exp, counts{4, 1, 1, 0, 1}},
		{"failed publish neither lost nor delivered", func(s [][]payload) [][]payload {
			// user 8's n=2 was published by a call that failed, and
			// arrived anyway; its n=3 failed and never came
			s[2] = append(s[2], to(8, 2, 4))
			return s
		}, expectation{PerUser: exp.PerUser, Failed: [][2]uint64{{8, 2}, {8, 3}}}, counts{5, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := streamWorker(t, users, tt.edit(clean()), tt.expect)
			got := counts{r.Unique, r.Lost, r.Misdelivered, r.Dups, int64(r.ConnsWithLoss)}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if got, want := r.Expected, int64(5); got != want {
				t.Errorf("expected %d, want %d", got, want)
			}
			if got, want := r.Other, int64(len(users)); got != want {
				t.Errorf("other events %d, want %d (one connected event each)", got, want)
			}
		})
	}
}

// TestBroadcastAccounting checks the same three faults for events to
// everyone, known by their global number.
func TestBroadcastAccounting(t *testing.T) {
	t.Parallel()
	ev := func(g uint64) payload { return payload{g: g, p: 0, s: g, t: 1} }
	r := streamWorker(t, []uint64{1, 2}, [][]payload{
		{ev(1), ev(2), ev(2), ev(3)}, // a duplicate
		{ev(1), ev(3)},               // a loss
	}, expectation{All: 3})
	if r.Unique != 5 || r.Lost != 1 || r.Dups != 1 || r.Misdelivered != 0 || r.Expected != 6 {
		t.Errorf("unique %d lost %d dups %d misdelivered %d expected %d; want 5 1 1 0 6",
			r.Unique, r.Lost, r.Dups, r.Misdelivered, r.Expected)
	}
}

// TestAddressing checks that every event goes to a connected user and is
// numbered within that user's events, and that failed ones leave the
// expectation.
func TestAddressing(t *testing.T) {
	t.Parallel()
	a := newAddressing([]uint64{5, 3, 5, 9})
	rng := rand.New(rand.NewPCG(1, 2))
	count := map[uint64]uint64{}
	for range 1000 {
		u, n := a.pick(rng)
		count[u]++
		if n != count[u] {
			t.Fatalf("user %d: event numbered %d, want %d", u, n, count[u])
		}
	}
	if len(count) != 3 || count[3] == 0 || count[5] == 0 || count[9] == 0 {
		t.Fatalf("addressees %v, want users 3, 5 and 9 only", count)
	}
	a.fail(5, 1)
	e := a.expectation()
	if got, want := e.of(5), int64(count[5])-1; got != want {
		t.Errorf("user 5 expects %d, want %d", got, want)
	}
	if got := e.of(4); got != 0 {
		t.Errorf("unconnected user 4 expects %d, want 0", got)
	}
}

func TestPayloadTargeted(t *testing.T) {
	t.Parallel()
	want := to(4711, 3, 6)
	b := appendPayload(nil, want, 0)
	for _, data := range []string{
		string(b),
		`{"channel":"#x","pub":{"data":` + string(b) + `,"offset":3}}`, // Centrifugo's envelope
		`{"n": 3, "u": 4711, "t": 1, "s": 6, "p": 0, "g": 6}`,          // re-encoded
	} {
		got, ok := parsePayload([]byte(data))
		if !ok || got != want {
			t.Errorf("parse(%s) = %+v, %v; want %+v", data, got, ok, want)
		}
	}
}
