package ssekit

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// HandlerOptions configures Hub.Handler.
type HandlerOptions struct {
	// Authenticate returns the user id of r: "" for an anonymous client,
	// or an error to refuse the request with 401. Nil treats every request
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
			WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", "the event stream is read with GET")
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

// serveAuthenticated serves the stream of an authenticated request, or
// refuses it with 401 and a JSON error: when authentication failed, or
// found no user where one is required. Handler and the Echo module both
// answer through it.
func (h *Hub) serveAuthenticated(w http.ResponseWriter, r *http.Request, who Identity, authErr error, requireAuth bool) {
	switch {
	case errors.Is(authErr, ErrInvalidTenant):
		h.cfg.Logger.Error(authErr.Error())
		WriteError(w, http.StatusInternalServerError, CodeInvalidTenant, strings.TrimPrefix(authErr.Error(), ErrInvalidTenant.Error()+": "))
	case errors.Is(authErr, ErrCredentialsExpired):
		WriteError(w, http.StatusUnauthorized, CodeCredentialsExpired, authErr.Error())
	case authErr != nil:
		WriteError(w, http.StatusUnauthorized, "unauthorized", authErr.Error())
	case who.User == "" && requireAuth:
		WriteError(w, http.StatusUnauthorized, "unauthorized", "authentication required")
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
		writeJSON(w, http.StatusOK, h.Status())
	})
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	// Topics are the topics a refusal is about, when it is about some.
	Topics []string `json:"topics,omitempty"`
}

// WriteError writes status with an ErrorBody.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, ErrorBody{Error: code, Message: message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
