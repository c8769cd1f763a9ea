package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/ssekit/sse/ssekit"
)

// grants are the topics a subscriber token lets its stream follow: the
// names of its "topics" and "allowed_topics" claims, and the prefixes of
// the latter's patterns ("board:*" allows every topic that starts with
// "board:"). A nil *grants allows nothing. It is never modified once
// built, so streams' goroutines may share it.
type grants struct {
	names    map[string]bool
	prefixes []string
}

// newGrants returns the grants of a token whose "topics" claim is topics
// and whose "allowed_topics" claim is allowed, or why the claims are
// invalid. Topics followed by default are allowed too: a token that names
// one need not repeat it.
func newGrants(topics, allowed []string) (*grants, error) {
	g := &grants{names: make(map[string]bool, len(topics)+len(allowed))}
	for i, t := range topics {
		if why := ssekit.ValidName(t); why != "" {
			return nil, fmt.Errorf("claim %s[%d]: topic %s %s", topicsClaim, i, quoteInput(t), why)
		}
		g.names[t] = true
	}
	for i, p := range allowed {
		name, prefix, why := parseGrant(p)
		switch {
		case why != "":
			return nil, fmt.Errorf("claim %s[%d]: %s %s", allowedTopicsClaim, i, quoteInput(p), why)
		case prefix:
			g.prefixes = append(g.prefixes, name)
		default:
			g.names[name] = true
		}
	}
	return g, nil
}

// parseGrant reads one entry of "allowed_topics": a topic name, or a
// pattern — a name's prefix, itself a valid name, followed by one '*',
// which stands for any rest, the empty one included. It returns the name
// or the prefix, whether it is a pattern, and why it is neither.
func parseGrant(s string) (name string, prefix bool, why string) {
	name, prefix = strings.CutSuffix(s, "*")
	switch {
	case strings.Contains(name, "*"):
		return "", false, `has a '*' that does not end it: a pattern is a topic name's start and one '*', as in "board:*"`
	case prefix && name == "":
		return "", false, `has nothing before its '*': a pattern starts with a letter or a digit, as in "board:*"`
	}
	if why := ssekit.ValidName(name); why != "" {
		return "", false, why
	}
	return name, prefix, ""
}

// allows reports whether g lets a stream follow topic.
func (g *grants) allows(topic string) bool {
	if g == nil {
		return false
	}
	if g.names[topic] {
		return true
	}
	for _, p := range g.prefixes {
		if strings.HasPrefix(topic, p) {
			return true
		}
	}
	return false
}

// grantsKey is the request context key of a stream's grants slot.
type grantsKey struct{}

// grantSlot holds the grants of the token a stream request carries, once
// identifyStream has read it.
type grantSlot struct{ g *grants }

// withGrantSlot returns r with an empty slot for its token's grants, which
// identifyStream fills (setGrants) and authorizeTopic reads.
//
// The hub has one TopicAuthorizer for every stream, and ssekit.Identity has
// no room for what a credential allows; but the hub calls Identify and
// then the authorizer with the same request's context, before the stream
// starts, on the request's goroutine (see ssekit.TopicAuthorizer). The
// request's context is therefore exactly as wide as one token's grants:
// they reach the authorizer with no state kept in between, and a request
// served without them is allowed no topic.
func withGrantSlot(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), grantsKey{}, new(grantSlot)))
}

// setGrants puts g in r's slot, if r has one.
func setGrants(r *http.Request, g *grants) {
	if slot, ok := r.Context().Value(grantsKey{}).(*grantSlot); ok {
		slot.g = g
	}
}

// authorizeTopic is ssehub's ssekit.TopicAuthorizer: a stream may follow a
// topic iff its token's claims allow it (see grants), whatever its user
// and tenant. It never fails: everything it needs is in the token.
func authorizeTopic(ctx context.Context, _ ssekit.Identity, topic string) (bool, error) {
	slot, _ := ctx.Value(grantsKey{}).(*grantSlot)
	if slot == nil {
		return false, nil
	}
	return slot.g.allows(topic), nil
}
