package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"strings"

	"github.com/google/uuid"

	sse "github.com/ssekit/sse"
)

// publishRequest is the body of POST <prefix>/publish.
type publishRequest struct {
	Users   []string        `json:"users"`
	Clients []string        `json:"clients"`
	Type    string          `json:"type"`
	Data    json.RawMessage `json:"data"`
}

// publishResponse is the answer to a publish: the id the broker gave it.
type publishResponse struct {
	ID string `json:"id"`
}

// typeRe is what an event type may be. The library only refuses what
// breaks the framing; an HTTP API for other languages is stricter, so
// that a type is also a safe listener name and metrics label.
var typeRe = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// reservedTypes are sent by the hub itself; a publisher sending them would
// confuse every client.
var reservedTypes = map[string]bool{sse.TypeConnected: true, sse.TypeHeartbeat: true, sse.TypeResync: true}

// maxClientIDLen bounds a client id in a publish.
const maxClientIDLen = 128

// publishHandler serves POST <prefix>/publish: it checks the key and the
// body and publishes nothing unless all of it is valid.
type publishHandler struct {
	hub     *sse.Hub
	key     keyChecker
	maxBody int64
	log     *slog.Logger
	metrics *serverMetrics
}

func (p *publishHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, ok := bearer(r.Header.Get("Authorization"))
	if !ok || !p.key.ok(key) {
		p.metrics.authFailures.WithLabelValues("publish").Inc()
		p.log.Info("publish refused", "reason", "wrong or missing publish key", "remote", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="ssehub publish"`)
		sse.WriteError(w, http.StatusUnauthorized, "unauthorized", "send the publish key as Authorization: Bearer <key>")
		return
	}
	req, status, err := p.decode(w, r)
	if err != nil {
		p.refuse(w, status, err)
		return
	}
	target, err := checkTarget(req)
	if err != nil {
		p.refuse(w, http.StatusBadRequest, err)
		return
	}
	id, err := p.hub.Publish(r.Context(), target, sse.Event{Type: req.Type, Data: req.Data})
	switch {
	case errors.Is(err, sse.ErrEventTooLarge):
		p.refuse(w, http.StatusRequestEntityTooLarge, err)
		return
	case errors.Is(err, sse.ErrInvalidEvent):
		p.refuse(w, http.StatusBadRequest, err)
		return
	case err != nil:
		// The hub is closing or the broker refused: nothing was sent, and
		// the publisher may try again (on another node).
		p.log.Warn("publish failed", "err", err, "type", req.Type)
		w.Header().Set("Retry-After", "1")
		sse.WriteError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	p.log.Debug("published", "id", id, "type", req.Type, "users", len(target.Users), "clients", len(target.Clients))
	writeJSON(w, http.StatusOK, publishResponse{ID: id})
}

// refuse answers a 4xx for input the publisher must fix.
func (p *publishHandler) refuse(w http.ResponseWriter, status int, err error) {
	p.metrics.publishRejected.WithLabelValues(fmt.Sprint(status)).Inc()
	p.log.Info("publish refused", "status", status, "err", err)
	code := "bad_request"
	switch status {
	case http.StatusRequestEntityTooLarge:
		code = "payload_too_large"
	case http.StatusUnsupportedMediaType:
		code = "unsupported_media_type"
	}
	sse.WriteError(w, status, code, err.Error())
}

// decode reads the body: one JSON object with known fields only, so that a
// typo like "user" for "users" is an error, not a broadcast to everyone.
func (p *publishHandler) decode(w http.ResponseWriter, r *http.Request) (publishRequest, int, error) {
	var req publishRequest
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		return req, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q: send application/json", ct)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return req, http.StatusRequestEntityTooLarge, fmt.Errorf("body over %d bytes", tooBig.Limit)
		}
		return req, http.StatusBadRequest, fmt.Errorf("read body: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, http.StatusBadRequest, fmt.Errorf("malformed JSON body: %w", err)
	}
	if dec.More() {
		return req, http.StatusBadRequest, errors.New("malformed JSON body: more than one value")
	}
	if len(req.Data) == 0 {
		req.Data = json.RawMessage("null")
	}
	return req, 0, nil
}

// isJSON reports whether a Content-Type is JSON (application/json or a
// +json type, with any parameters). curl -d sends form-urlencoded, which
// is refused with a message that says what to send.
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// checkTarget validates the type and the addressees and returns the
// target with user ids in canonical form.
func checkTarget(req publishRequest) (sse.Target, error) {
	var t sse.Target
	if !typeRe.MatchString(req.Type) {
		return t, fmt.Errorf("type %q: want 1 to 64 of A-Z a-z 0-9 _ . : -", req.Type)
	}
	if reservedTypes[req.Type] {
		return t, fmt.Errorf("type %q is reserved for the hub", req.Type)
	}
	for i, u := range req.Users {
		id, err := uuid.Parse(u)
		if err != nil || id == uuid.Nil {
			return t, fmt.Errorf("users[%d]: %q is not a user uuid", i, u)
		}
		t.Users = append(t.Users, id.String())
	}
	for i, c := range req.Clients {
		if c == "" || len(c) > maxClientIDLen || !printableASCII(c) {
			return t, fmt.Errorf("clients[%d]: %q is not a client id", i, c)
		}
		t.Clients = append(t.Clients, c)
	}
	return t, nil
}

// printableASCII reports whether s has only printable ASCII without spaces.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
