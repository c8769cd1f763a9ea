package redisbroker

import "sync/atomic"

// Kinds of Redis commands the broker counts.
const (
	opPublish       = iota // a publish script, or SPUBLISH to clients
	opHead                 // a channel's head
	opRead                 // a page of a channel's history (a resume)
	opFill                 // a page a subscription read to fill a gap
	opSubscribe            // an SSUBSCRIBE
	opLive                 // an announcement a subscription heard
	opCursor               // a cursor saved or loaded
	opKey                  // an idempotency key claimed
	opKeyRecorded          // a claim that recorded a new key
	opPresence             // a presence write: a lease, a leave, a check, a node's record
	opPresenceQuery        // a presence read: one user asked about, or the count
	nOps
)

// opCounters counts commands by kind.
type opCounters [nOps]atomic.Int64

func (c *opCounters) add(kind, n int) { c[kind].Add(int64(n)) }

// Ops counts what a broker asked of Redis, and heard from it, since it
// was made: the measure of what a node's work grows with (see
// docs/cluster.md).
type Ops struct {
	Publishes  int64 `json:"publishes"`  // publish scripts (one per channel) and SPUBLISHes to clients
	Heads      int64 `json:"heads"`      // head reads (a new stream, a newly followed channel)
	Reads      int64 `json:"reads"`      // history pages read for resuming streams
	Fills      int64 `json:"fills"`      // history pages read to fill a subscription's gap
	Subscribes int64 `json:"subscribes"` // SSUBSCRIBE commands
	Live       int64 `json:"live"`       // announcements received by subscriptions
	Cursors    int64 `json:"cursors"`    // cursors saved or loaded
	Keys       int64 `json:"keys"`       // idempotency keys claimed (one SET per keyed publish)
	// KeysRecorded counts the claims that recorded a new key: each is a
	// record that Redis keeps for KeyWindow (about 200 bytes, and about
	// 150 more per channel of the publish).
	KeysRecorded int64 `json:"keys_recorded"`
	// Presence counts the commands that keep this node's users present
	// (StartPresence): per refresh one per user of this node, plus a
	// few for the node itself, and one or two per user that comes or
	// goes; never per user of another node.
	Presence int64 `json:"presence"`
	// PresenceQueries counts presence reads: one per user asked about
	// (UsersOnline), one per OnlineUsers.
	PresenceQueries int64 `json:"presence_queries"`
}

// Ops returns the broker's counts.
func (b *Broker) Ops() Ops {
	return Ops{
		Publishes:  b.ops[opPublish].Load(),
		Heads:      b.ops[opHead].Load(),
		Reads:      b.ops[opRead].Load(),
		Fills:      b.ops[opFill].Load(),
		Subscribes: b.ops[opSubscribe].Load(),
		Live:       b.ops[opLive].Load(),
		Cursors:    b.ops[opCursor].Load(),
		Keys:       b.ops[opKey].Load(),

		KeysRecorded:    b.ops[opKeyRecorded].Load(),
		Presence:        b.ops[opPresence].Load(),
		PresenceQueries: b.ops[opPresenceQuery].Load(),
	}
}
