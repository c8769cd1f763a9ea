package ssekit

import (
	"context"
	"slices"
)

// Recipients is what a Publish with CountRecipients reports about whom
// its event was for: "was anyone there?", to push or e-mail the users
// who were not.
type Recipients struct {
	// Connections is how many of this node's streams the event was
	// addressed to when Publish returned (each once, however many of its
	// channels it follows); other nodes' streams are not counted. 0 for
	// a replayed publish, which sends nothing.
	Connections int
	// Online holds every user of Target.Users: true if the user has a
	// stream on any node of the cluster (see Hub.IsOnline), false if not,
	// or if its presence could not be read (PresenceErr), so that "push
	// if offline" errs on the side of a push.
	Online map[string]bool
	// PresenceErr is why the presence of some users could not be read,
	// or nil. The event was published all the same.
	PresenceErr error
}

// CountRecipients has Publish fill *r once the event is published (see
// Recipients). It costs a walk over the addressed streams of this node
// and, for each addressed user without a stream here, one presence
// query of the broker; a Publish without it pays nothing.
func CountRecipients(r *Recipients) PublishOption {
	return func(o *publishOptions) { o.recipients = r }
}

// countRecipients fills r for the publish m to users, after it was
// published; m is nil for a replayed one, which reached no stream.
func (h *Hub) countRecipients(ctx context.Context, r *Recipients, m *Message, users []string) {
	*r = Recipients{}
	switch {
	case m != nil && slices.Contains(m.Channels, BroadcastChannel):
		// Every stream follows it: no walk over all of them again.
		r.Connections, _ = h.reg.counts()
	case m != nil:
		// The registry's own walk of a delivery, over positions that are
		// only placeholders: every addressed stream once.
		walk := Message{Channels: m.Channels, Positions: make([]string, len(m.Channels)), Clients: m.Clients}
		h.reg.each(&walk, func(*follower, int, int) { r.Connections++ })
	}
	if users != nil {
		r.Online, r.PresenceErr = h.UsersOnline(ctx, users)
	}
}
