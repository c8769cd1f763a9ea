package ssekit

import (
	"testing"
)

// msgAt is a message of the broadcast channel at pos.
func msgAt(pos string) *Message {
	return &Message{Channels: []string{BroadcastChannel}, Positions: []string{pos}}
}

func TestCatchUpKeepsABrokerResyncWhateverItsPosition(t *testing.T) {
	c, _ := newFollower("c", "u", nil, 10, nil)
	_, _ = c.enqueue(&queuedEvent{msg: msgAt("5-1"), frame: []byte("old")}, 0, "5-1", OverflowDisconnect, 0, 0)
	_, _ = c.enqueue(&queuedEvent{msg: msgAt("0-0"), resync: true}, 0, "0-0", OverflowDisconnect, 0, 0)
	_, _ = c.enqueue(&queuedEvent{msg: msgAt("9-1"), frame: []byte("new")}, 0, "9-1", OverflowDisconnect, 0, 0)
	if !c.endCatchUp([]string{"7-0", "1-0"}) {
		t.Fatal("endCatchUp reported an overflow")
	}
	q, _, _ := c.take(nil, 0)
	if len(q) != 2 || !q[0].resync || string(q[1].frame) != "new" {
		t.Fatalf("queue after catch-up: %+v", q)
	}
}

// A live event of one channel at or before the replay's floor in that
// channel is dropped; the floor of another channel does not matter.
func TestFloorsArePerChannel(t *testing.T) {
	c, _ := newFollower("c", "u", nil, 10, nil)
	if !c.endCatchUp([]string{"7-0", "3-0"}) {
		t.Fatal("endCatchUp reported an overflow")
	}
	user := &Message{Channels: []string{UserChannel("u")}, Positions: []string{"5-0"}}
	if res, _ := c.enqueue(&queuedEvent{msg: user}, 1, "5-0", OverflowDisconnect, 0, 0); res != queued {
		t.Fatalf("user event past its channel's floor: %v, want queued", res)
	}
	if res, _ := c.enqueue(&queuedEvent{msg: msgAt("6-0")}, 0, "6-0", OverflowDisconnect, 0, 0); res != ignored {
		t.Fatalf("broadcast event before its channel's floor: %v, want ignored", res)
	}
	if res, _ := c.enqueue(&queuedEvent{msg: msgAt("8-0")}, 0, "8-0", OverflowDisconnect, 0, 0); res != queued {
		t.Fatalf("broadcast event past its channel's floor: %v, want queued", res)
	}
}
