package ssekit

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/ssekit/sse/internal/httpjson"
)

// HandlerOptions configures Hub.Handler.
type HandlerOptions struct {
	// Authenticate returns the user id of r: "" for an anonymous client,
	// or an error to refuse the request with 401 (a *TryLater to send the
	// client away for a while instead). Nil treats every request
	// as anonymous.
	Authenticate func(r *http.Request) (userID string, err error)

	// Identify, when set, is used instead of Authenticate: it returns
	// whom r's stream is for, user and tenant (and topics the credential
	// grants), or an error to refuse the request with 401.
	Identify func(r *http.Request) (Identity, error)

	// RequireAuth refuses anonymous requests with 401.
	RequireAuth bool
}

// Handler returns the event stream as a plain http.Handler, for net/http's
// ServeMux, chi or any router. A request it refuses for its credentials
// gets a 401 with a JSON error body and no stream, and one refused for its
// topics a 400 or 403 (see ServeIdentity): a browser's EventSource takes
// any status but 200 as final and stops for good. A hub that is full or
// closing answers 200 with a retry hint instead, so that it comes back.
func (h *Hub) Handler(opts HandlerOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "the event stream is read with GET")
			return
		}
		var who Identity
		var err error
		switch {
		case opts.Identify != nil:
			who, err = opts.Identify(r)
		case opts.Authenticate != nil:
			who.User, err = opts.Authenticate(r)
		}
		h.serveAuthenticated(w, r, who, err, opts.RequireAuth)
	})
}

// TryLater is the error for HandlerOptions.Identify or Authenticate to
// return when a request is not to be served now but its client should
// come back: over a rate limit, or while the app's auth backend is down.
// The hub answers it as Refuse does — 200, a retry field of at least
// After, no stream — where any other error is a 401, which a browser's
// EventSource takes as final.
type TryLater struct {
	After time.Duration
	Err   error // why, for logs; may be nil
}

func (e *TryLater) Error() string {
	if e.Err == nil {
		return "sse: try again later"
	}
	return "sse: try again later: " + e.Err.Error()
}

func (e *TryLater) Unwrap() error { return e.Err }

// serveAuthenticated serves the stream of an authenticated request, or
// refuses it with 401 and a JSON error: when authentication failed, or
// found no user where one is required. Handler and the Echo module both
// answer through it.
func (h *Hub) serveAuthenticated(w http.ResponseWriter, r *http.Request, who Identity, authErr error, requireAuth bool) {
	var later *TryLater
	switch {
	case errors.As(authErr, &later):
		h.Refuse(w, later.After)
	case errors.Is(authErr, ErrInvalidTenant):
		h.cfg.Logger.Error(authErr.Error())
		writeError(w, http.StatusInternalServerError, CodeInvalidTenant, strings.TrimPrefix(authErr.Error(), ErrInvalidTenant.Error()+": "))
	case errors.Is(authErr, ErrCredentialsExpired):
		writeError(w, http.StatusUnauthorized, CodeCredentialsExpired, authErr.Error())
	case authErr != nil:
		writeError(w, http.StatusUnauthorized, "unauthorized", authErr.Error())
	case who.User == "" && requireAuth:
		writeError(w, http.StatusUnauthorized, "unauthorized", "authentication required")
	default:
		h.ServeIdentity(w, r, who)
	}
}

// Status is the body of the status endpoint.
type Status struct {
	Status         string `json:"status"`
	ConnectedUsers int    `json:"connected_users"`
	TotalClients   int    `json:"total_clients"`
}

// Status reports the hub's connections; Status is "closed" after Shutdown.
func (h *Hub) Status() Status {
	clients, users := h.reg.counts()
	st := "operational"
	if h.closing.Load() {
		st = "closed"
	}
	return Status{Status: st, ConnectedUsers: users, TotalClients: clients}
}

// StatusHandler serves Status as JSON.
func (h *Hub) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, h.Status())
	})
}

// ErrorBody is the JSON body of every refusal of a stream: a code a client
// can act on (credentials_expired, topic_forbidden, …) and a message for
// people. It stays exported for the clients and apps that read why a
// stream was refused (see ExampleConfig_authorizeTopic).
type ErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	// Topics are the topics a refusal is about, when it is about some.
	Topics []string `json:"topics,omitempty"`
}

// writeError writes status with an ErrorBody.
func writeError(w http.ResponseWriter, status int, code, message string) {
	httpjson.Write(w, status, ErrorBody{Error: code, Message: message})
}
