package ssekit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ssekit/sse/internal/httpjson"
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
	// Expires is when the credential the stream was opened with stops
	// being valid (a token's exp); zero for never. The stream does not
	// outlive it: at Expires the hub writes a TypeSessionEnded event and
	// ends the stream, and a request whose Expires has passed is refused
	// with 401 credentials_expired.
	Expires time.Time
}

// TypeSessionEnded is the last event of a stream whose credentials
// expired or whose session was revoked (Config.CheckSession). Its data is
// {"reason":"expired"|"revoked","last_event_id":"…"} and its id the
// stream's position: the client gets new credentials and reconnects with
// that Last-Event-ID, which resumes with no gap and no duplicate. A
// browser's EventSource would reconnect by itself with the credentials it
// has (fine for a session cookie that was renewed meanwhile); a page that
// holds a token closes it and opens a new one with a fresh token and
// ?lastEventId=.
const TypeSessionEnded = "session_ended"

// typeSessionCheck is the broker message with which RecheckSessions asks
// every node to check a user's streams; it is never written to a client.
const typeSessionCheck = "session_check"

// The reasons of a TypeSessionEnded event, also counted in
// Stats.Disconnects.
const (
	ReasonExpired = "expired" // the stream's credentials expired (Identity.Expires)
	ReasonRevoked = "revoked" // Config.CheckSession refused its session
)

var (
	// ErrCredentialsExpired is for an app's authentication to wrap when a
	// credential was valid but has expired: the hub then refuses the
	// request with 401 and the code credentials_expired, so that a client
	// can tell "get a new token and resume" from "this token is bad".
	ErrCredentialsExpired = errors.New("sse: credentials expired")

	// ErrSessionRevoked is for Config.CheckSession to wrap when a
	// session is over (logged out, user blocked): the stream ends, or the
	// request is refused with 401 session_revoked. Any other error means
	// the check could not decide, and changes nothing.
	ErrSessionRevoked = errors.New("sse: session revoked")

	// ErrInvalidTenant is for an app's authentication (HandlerOptions.
	// Identify) to wrap when what it holds for the tenant cannot be read
	// as an id: the app's bug, not the client's credentials, so the hub
	// answers 500 invalid_tenant and logs it instead of a 401.
	ErrInvalidTenant = errors.New("sse: invalid tenant")
)

// SessionChecker re-checks the session of an open stream; see
// Config.CheckSession. It returns nil to keep the stream, an error
// wrapping ErrSessionRevoked to end it, and any other error when it
// cannot tell (the stream is kept, and the failure logged).
type SessionChecker func(ctx context.Context, who Identity) error

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

	CodeCredentialsExpired = "credentials_expired" // 401: get new credentials and resume
	CodeSessionRevoked     = "session_revoked"     // 401: Config.CheckSession refused the session
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
// A response writer that cannot stream — one that cannot flush, such as
// http.TimeoutHandler's (Echo's middleware.Timeout), or one that copies
// the body into memory (middleware.BodyDump) — is refused first, with 500
// CodeStreamUnsupported naming it and one log line (see docs/echo.md).
func (h *Hub) ServeIdentity(w http.ResponseWriter, r *http.Request, who Identity) {
	if !h.streamable(w, r) {
		return
	}
	if status, body := h.checkSession(r, who); status != 0 {
		if status == retryLater {
			h.Refuse(w, 0)
		} else {
			httpjson.Write(w, status, body)
		}
		return
	}
	extra, status, body := h.channelsOf(r, who)
	switch {
	case status == retryLater:
		h.Refuse(w, 0)
		return
	case status != 0:
		httpjson.Write(w, status, body)
		return
	}
	h.serve(w, r, who, extra)
}

// retryLater is the "status" of a request whose check could not decide
// (an authorizer's or a session check's error): it is sent away with a
// retry hint, as a full hub sends one.
const retryLater = -1

// checkSession refuses a request whose credentials have expired or whose
// session Config.CheckSession refuses (401), or sends it away to retry
// when the check could not decide (retryLater).
func (h *Hub) checkSession(r *http.Request, who Identity) (int, ErrorBody) {
	if !who.Expires.IsZero() && !time.Now().Before(who.Expires) {
		return http.StatusUnauthorized, ErrorBody{Error: CodeCredentialsExpired, Message: "the credentials expired at " + who.Expires.UTC().Format(time.RFC3339) + ": get new ones and resume"}
	}
	if h.cfg.CheckSession == nil {
		return 0, ErrorBody{}
	}
	err := h.cfg.CheckSession(r.Context(), who)
	switch {
	case err == nil:
		return 0, ErrorBody{}
	case errors.Is(err, ErrSessionRevoked):
		return http.StatusUnauthorized, ErrorBody{Error: CodeSessionRevoked, Message: err.Error()}
	}
	h.cfg.Logger.Warn("sse: session check failed; stream sent away to retry", "user", who.User, "err", err)
	return retryLater, ErrorBody{}
}

// identity returns whom c's stream is for, from its channels, as
// CheckSession is given it (Expires left zero).
func (c *follower) identity() Identity {
	who := Identity{User: c.user}
	for _, ch := range c.channels {
		if t, ok := strings.CutPrefix(ch, tenantPrefix); ok {
			who.Tenant = t
		} else if t, ok := strings.CutPrefix(ch, topicPrefix); ok {
			who.Topics = append(who.Topics, t)
		}
	}
	return who
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
	topics := sortedSet(append(slices.Clip(who.Topics), r.URL.Query()[TopicParam]...))
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
				return nil, retryLater, ErrorBody{}
			}
		}
		if !ok {
			denied = append(denied, t)
		}
	}
	if len(denied) > 0 {
		if h.cfg.AuthorizeTopic == nil {
			h.cfg.Logger.Warn("sse: a stream asked for topics, and Config.AuthorizeTopic is nil: it allows none", "topics", len(denied))
		}
		if len(denied) > maxListed {
			denied = denied[:maxListed]
		}
		for i := range denied {
			denied[i] = clip(denied[i])
		}
		return nil, http.StatusForbidden, ErrorBody{Error: CodeTopicForbidden, Message: "not allowed to follow topic " + quoteAll(denied), Topics: denied}
	}
	var extra []string
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
