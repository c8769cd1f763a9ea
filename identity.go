package sse

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Identity is whom a stream is for, as the app's authentication found.
type Identity struct {
	// User is the user id; "" for an anonymous stream.
	User string
	// Tenant is the tenant (organisation, workspace) the stream belongs
	// to, at most one; "" for none. The stream follows the tenant's
	// channel: Target.Tenants and SendToTenant reach it. Tenant ids have
	// the syntax of ValidName.
	Tenant string
	// Topics are topics the stream follows without asking for them, such
	// as the ones a credential names (ssehub: a token's "topics" claim).
	// They are checked and authorized like the ones the request asks for.
	Topics []string
}

// TopicAuthorizer decides whether the stream of who may follow topic. The
// hub calls it before the stream starts, once for each topic the stream
// asks for (its request's and its Identity's), on the request's goroutine
// with the request's context; who is whom the app's authentication found,
// tenant included, so that an app scopes topics to tenants here. It
// returns true to allow; false refuses the whole stream with 403 and a
// JSON body naming the topic, before anything is registered or replayed. An
// error means it could not decide (its database is down): the stream is
// refused the way a full hub refuses one, with a retry hint, so that the
// client tries again later.
//
// It is asked at every connection, resumes included: a topic allowed
// yesterday and denied now is refused now, and no replay ever holds a
// channel the stream is not allowed now.
type TopicAuthorizer func(ctx context.Context, who Identity, topic string) (bool, error)

// AllowAllTopics is a TopicAuthorizer for apps whose topics are all
// public: it allows every topic to every stream.
func AllowAllTopics(context.Context, Identity, string) (bool, error) { return true, nil }

// TopicParam is the query parameter a stream request names a topic with,
// once per topic: /stream?topic=board:7&topic=doc:42.
const TopicParam = "topic"

// Refusals of a stream request, as the error field of their JSON body.
const (
	CodeInvalidTopic   = "invalid_topic"   // 400: a topic name ValidName refuses
	CodeTooManyTopics  = "too_many_topics" // 400: over Config.MaxTopics
	CodeTopicForbidden = "topic_forbidden" // 403: the TopicAuthorizer said no
	CodeInvalidTenant  = "invalid_tenant"  // 500: the app's tenant id is not a ValidName
)

// ServeIdentity is ServeStream for a stream with a tenant or topics: it
// follows the broadcast channel, its user's, its tenant's and the topics of
// who.Topics and of the request's topic parameters. Before anything else
// it checks them, and refuses the request with a JSON ErrorBody and no
// stream: 400 for a topic name that is not a ValidName or more topics
// than Config.MaxTopics, 403 for a topic that Config.AuthorizeTopic does
// not allow (every one when it is nil), with the refused topics listed. A
// browser's EventSource takes any status but 200 as final: it fires an
// error event and does not reconnect; a page that wants to say why can
// fetch the same URL and read the body (see the demo page of cmd/ssehub).
func (h *Hub) ServeIdentity(w http.ResponseWriter, r *http.Request, who Identity) {
	extra, status, body := h.channelsOf(r, who)
	switch {
	case status < 0:
		h.Refuse(w, 0)
		return
	case status != 0:
		writeJSON(w, status, body)
		return
	}
	h.serve(w, r, who.User, extra)
}

// channelsOf returns the channels a stream of who follows besides the
// broadcast one and its user's, or the status and body refusing it.
func (h *Hub) channelsOf(r *http.Request, who Identity) ([]string, int, ErrorBody) {
	if who.Tenant != "" {
		if why := ValidName(who.Tenant); why != "" {
			h.cfg.Logger.Error("sse: the app's tenant id is not a valid name; stream refused", "tenant", who.Tenant, "why", why)
			return nil, http.StatusInternalServerError, ErrorBody{Error: CodeInvalidTenant, Message: "the tenant id " + why}
		}
	}
	asked := r.URL.Query()[TopicParam]
	if len(asked) == 0 && len(who.Topics) == 0 {
		if who.Tenant == "" {
			return nil, 0, ErrorBody{}
		}
		return []string{TenantChannel(who.Tenant)}, 0, ErrorBody{}
	}
	topics := sortedSet(append(slices.Clip(who.Topics), asked...))
	for _, t := range topics {
		if why := ValidName(t); why != "" {
			t = clip(t)
			return nil, http.StatusBadRequest, ErrorBody{Error: CodeInvalidTopic,
				Message: fmt.Sprintf("topic %q %s", t, why), Topics: []string{t}}
		}
	}
	if limit := h.cfg.MaxTopics; limit > 0 && len(topics) > limit {
		return nil, http.StatusBadRequest, ErrorBody{Error: CodeTooManyTopics,
			Message: fmt.Sprintf("%d topics asked for, at most %d per stream", len(topics), limit)}
	}
	var denied []string
	for _, t := range topics {
		ok := false
		if h.cfg.AuthorizeTopic != nil {
			var err error
			if ok, err = h.cfg.AuthorizeTopic(r.Context(), who, t); err != nil {
				h.cfg.Logger.Warn("sse: topic authorization failed; stream sent away to retry", "topic", t, "err", err)
				return nil, -1, ErrorBody{}
			}
		}
		if !ok {
			denied = append(denied, t)
		}
	}
	if len(denied) > maxListed {
		denied = denied[:maxListed]
	}
	if len(denied) > 0 {
		msg := fmt.Sprintf("not allowed to follow topic %s", quoteAll(denied))
		if h.cfg.AuthorizeTopic == nil {
			msg = "this hub allows no topics (Config.AuthorizeTopic is nil); asked for " + quoteAll(denied)
		}
		return nil, http.StatusForbidden, ErrorBody{Error: CodeTopicForbidden, Message: msg, Topics: denied}
	}
	extra := make([]string, 0, 1+len(topics))
	if who.Tenant != "" {
		extra = append(extra, TenantChannel(who.Tenant))
	}
	for _, t := range topics {
		extra = append(extra, TopicChannel(t))
	}
	return extra, 0, ErrorBody{}
}

// A refusal echoes little of what it refuses: a name clipped to
// maxEcho bytes, at most maxListed names, so that a request cannot make
// its answer (or a log line) much larger than itself.
const (
	maxEcho   = 64
	maxListed = 16
)

// clip cuts s to maxEcho bytes, marking the cut.
func clip(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	return s[:maxEcho] + "…"
}

// quoteAll quotes names and joins them with ", ".
func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
