package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/ssekit/sse/internal/httpjson"
	"github.com/ssekit/sse/ssekit"
)

// maxPresenceUsers bounds the users of one presence query: each one
// without a stream on the node that answers costs a Redis command.
const maxPresenceUsers = 100

// presenceTimeout bounds the cluster's answer to one presence query.
const presenceTimeout = 2 * time.Second

// presenceHandler serves GET <prefix>/presence?user=…&user=…, for
// publishers (the publish key): whether each user is online on any node.
type presenceHandler struct {
	hub     *ssekit.Hub
	key     keyChecker
	log     *slog.Logger
	metrics *serverMetrics
}

// userPresence is one user's answer: online anywhere in the cluster, and
// its streams on the node that answered.
type userPresence struct {
	Online      bool `json:"online"`
	Connections int  `json:"connections"`
}

// presenceResponse is the answer to a presence query, by user id.
type presenceResponse struct {
	Users map[string]userPresence `json:"users"`
}

// ServeHTTP answers 200 with every user asked about, 401 without the
// publish key, 400 for no user, a user that is not a uuid or more than
// maxPresenceUsers, 503 when the cluster does not answer.
func (p *presenceHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.key.authorize(w, r, "presence", p.metrics, p.log) {
		return
	}
	asked := r.URL.Query()["user"]
	switch {
	case len(asked) == 0:
		writeError(w, http.StatusBadRequest, "bad_request", "name the users: ?user=<uuid>&user=<uuid>…")
		return
	case len(asked) > maxPresenceUsers:
		writeError(w, http.StatusBadRequest, "too_many_users", fmt.Sprintf("%d users, at most %d per query: split it", len(asked), maxPresenceUsers))
		return
	}
	users := make([]string, len(asked))
	for i, u := range asked {
		id, err := uuid.Parse(u)
		if err != nil || id == uuid.Nil {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("user %s is not a user uuid", quoteInput(u)))
			return
		}
		users[i] = id.String()
	}
	ctx, cancel := context.WithTimeout(r.Context(), presenceTimeout)
	defer cancel()
	online, err := p.hub.UsersOnline(ctx, users)
	if err != nil {
		p.log.Warn("presence query failed", "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	resp := presenceResponse{Users: make(map[string]userPresence, len(online))}
	for u, on := range online {
		resp.Users[u] = userPresence{Online: on, Connections: p.hub.UserClientCount(u)}
	}
	httpjson.Write(w, http.StatusOK, resp)
}
