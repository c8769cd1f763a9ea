package sse

import "testing"

func TestCatchUpKeepsABrokerResyncWhateverItsID(t *testing.T) {
	c := newClient("c", "u", 10, nil)
	_, _ = c.enqueue(&entry{id: "5-1", frame: []byte("old")}, OverflowDisconnect)
	_, _ = c.enqueue(&entry{id: "0-0", frame: []byte("resync"), resync: true}, OverflowDisconnect)
	_, _ = c.enqueue(&entry{id: "9-1", frame: []byte("new")}, OverflowDisconnect)
	if !c.endCatchUp("7-0") {
		t.Fatal("endCatchUp reported an overflow")
	}
	q, _, _ := c.take(nil)
	if len(q) != 2 || string(q[0].frame) != "resync" || string(q[1].frame) != "new" {
		t.Fatalf("queue after catch-up: %+v", q)
	}
}
