package redisbroker

import "context"

// ManualPresence is a node's presence that a test refreshes by hand, with
// no goroutine: a node that stops refreshing is one that died.
type ManualPresence struct{ p *presence }

// NewManualPresence returns the presence of src on b, not yet refreshed.
func NewManualPresence(b *Broker, src PresenceSource) *ManualPresence {
	p := newPresence(b, src)
	return &ManualPresence{p: p}
}

// Refresh is one refresh of the node.
func (m *ManualPresence) Refresh(ctx context.Context) error { return m.p.refresh(ctx) }

// Key is one of b's keys ({Prefix}:name).
func Key(b *Broker, name string) string { return b.key(name) }

// NodeKey is one of a node's presence keys.
func NodeKey(b *Broker, node, suffix string) string { return b.nodeKey(node, suffix) }

// Hold runs b's node's hold of user, as a first call or as the retry of a
// call whose reply was lost: the seq of the user's coming online it
// reports, or 0 for none.
func Hold(ctx context.Context, b *Broker, user, tenant string, retry bool) (int64, error) {
	res, err := holdScript.Run(ctx, b.rdb, []string{b.userKey(user, "on"), b.userKey(user, "st")},
		b.opts.Node, b.opts.PresenceTTL.Milliseconds(), presenceKeep.Milliseconds(), tenant, flag(retry)).Slice()
	if err != nil || res[0].(int64) != 1 {
		return 0, err
	}
	return res[1].(int64), nil
}

// Leave drops b's node's lease on user.
func Leave(ctx context.Context, b *Broker, user string) error {
	return leaveScript.Run(ctx, b.rdb, []string{b.userKey(user, "on"), b.userKey(user, "st")},
		b.opts.Node, presenceKeep.Milliseconds(), "").Err()
}

// Check runs b's node's offline check of user, with no debounce: the seq
// of the user's going offline it reports, or 0 for none.
func Check(ctx context.Context, b *Broker, user string, retry bool) (int64, error) {
	res, err := checkScript.Run(ctx, b.rdb, []string{b.userKey(user, "on"), b.userKey(user, "st")},
		0, b.opts.Node, b.opts.Node, presenceKeep.Milliseconds(), flag(retry)).Slice()
	if err != nil || res[0].(int64) != 1 {
		return 0, err
	}
	return res[2].(int64), nil
}

// Unmark clears b's node's mark of the change seq of user, reported.
func Unmark(ctx context.Context, b *Broker, user string, seq int64) error {
	return unmarkScript.Run(ctx, b.rdb, []string{b.userKey(user, "st")}, b.opts.Node, seq).Err()
}

func flag(retry bool) string {
	if retry {
		return "1"
	}
	return "0"
}
