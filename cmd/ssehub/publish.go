package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ssekit/sse/internal/httpjson"
	"github.com/ssekit/sse/ssekit"
)

// publishRequest is the body of POST <prefix>/publish. Everyone is only
// All: a body that names nobody is refused, never a broadcast. The lists
// are left out when empty, so that the CLI, which sends this type, never
// sends the null list the hub refuses.
type publishRequest struct {
	All     bool            `json:"all,omitempty"`
	Users   []string        `json:"users,omitempty"`
	Clients []string        `json:"clients,omitempty"`
	Tenant  string          `json:"tenant,omitempty"` // one tenant id
	Topics  []string        `json:"topics,omitempty"`
	Type    string          `json:"type"`
	Data    json.RawMessage `json:"data"`
}

// publishItem is one event of a batch: a publishRequest and, as an
// Idempotency-Key header does for one publish, its own key.
type publishItem struct {
	publishRequest
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// event is the event r publishes.
func (r publishRequest) event() ssekit.Event { return ssekit.Event{Type: r.Type, Data: r.Data} }

// publishFields are the keys a publish body may have, spelt exactly;
// batchFields those of an event of a batch.
var (
	publishFields = []string{"all", "users", "clients", "tenant", "topics", "type", "data"}
	batchFields   = append(slices.Clip(publishFields), "idempotency_key")
)

// addresseeFields are the keys of publishFields that name whom an event
// is for.
var addresseeFields = []string{"all", "users", "clients", "tenant", "topics"}

// publishResponse is the answer to a publish: the id the broker gave it,
// and whether that id is an earlier publish's with the same
// Idempotency-Key (nothing was stored or sent this time).
type publishResponse struct {
	ID       string `json:"id"`
	Replayed bool   `json:"replayed,omitempty"`
	// Connections is how many streams of the node that answered the
	// event was addressed to (0 for a replay); Online holds each of
	// "users": whether it has a stream on any node (false also when its
	// presence could not be read), so that a publisher pushes by other
	// means to those who were not. Both are left out of the answer to a
	// publish to more than maxPresenceUsers users, which would cost a
	// Redis command per user.
	Connections *int            `json:"connections,omitempty"`
	Online      map[string]bool `json:"online,omitempty"`
}

// The headers of an idempotent publish, as HTTP APIs name them (Stripe's,
// and the IETF draft "The Idempotency-Key HTTP Header Field"): the
// publisher's key for the publish, and the mark on the answer to a repeat.
const (
	idempotencyHeader = "Idempotency-Key"
	replayedHeader    = "Idempotent-Replayed"
)

// typeRe is what an event type may be. The library only refuses what
// breaks the framing and the types it reserves (ssekit.ReservedType); an HTTP
// API for other languages is stricter, so that a type is also a safe
// listener name and metrics label.
var typeRe = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// maxClientIDLen bounds a client id in a publish.
const maxClientIDLen = 128

// publishHandler serves POST <prefix>/publish: it checks the key and the
// body and publishes nothing unless all of it is valid.
type publishHandler struct {
	hub     *ssekit.Hub
	key     keyChecker
	maxBody int64
	// maxBatch bounds the body of a batch (--max-batch-bytes).
	maxBatch int64
	// maxRecipients bounds the users, clients, tenant and topics of one
	// publish, together; 0: no limit.
	// The hub has the same bound; this one answers before the ids are
	// parsed, naming the flag.
	maxRecipients int
	// keyWindow is --idempotency-window, for the message of a 422.
	keyWindow time.Duration
	log       *slog.Logger
	metrics   *serverMetrics
}

// ServeHTTP publishes one event: 200 with its id, 401 without the key, a
// 4xx naming what to fix, or 503 when the hub or its broker cannot take
// it (retry). With an Idempotency-Key, a repeat within the window is 200
// with the first publish's id, "replayed": true and an
// Idempotent-Replayed: true header, and stores nothing; a repeat that
// differs is 422.
func (p *publishHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.key.authorize(w, r, "publish", p.metrics, p.log) {
		return
	}
	idemKey, err := idempotencyKey(r.Header)
	if err != nil {
		p.refuse(w, http.StatusBadRequest, err)
		return
	}
	body, status, err := p.readBody(w, r)
	if err != nil {
		p.refuse(w, status, err)
		return
	}
	if isBatch(body) {
		if int64(len(body)) > p.maxBatch {
			p.refuse(w, http.StatusRequestEntityTooLarge, fmt.Errorf("batch body over %d bytes (--max-batch-bytes)", p.maxBatch))
			return
		}
		if idemKey != "" {
			p.refuse(w, http.StatusBadRequest, fmt.Errorf("%s on a batch: give each event its own key in its %q field", idempotencyHeader, "idempotency_key"))
			return
		}
		p.serveBatch(w, r, body)
		return
	}
	if int64(len(body)) > p.maxBody {
		p.refuse(w, http.StatusRequestEntityTooLarge, fmt.Errorf("body over %d bytes (--max-publish-bytes; a batch may have --max-batch-bytes)", p.maxBody))
		return
	}
	req, err := decodePublish(body, publishFields)
	if err != nil {
		p.refuse(w, http.StatusBadRequest, err)
		return
	}
	target, err := checkTarget(req.publishRequest, p.maxRecipients)
	if err != nil {
		p.refuse(w, http.StatusBadRequest, err)
		return
	}
	var replayed bool
	var rcpt ssekit.Recipients
	opts := []ssekit.PublishOption{ssekit.Replayed(&replayed)}
	counted := len(target.Users) <= maxPresenceUsers
	if counted {
		opts = append(opts, ssekit.CountRecipients(&rcpt))
	}
	if idemKey != "" {
		opts = append(opts, ssekit.IdempotencyKey(idemKey))
	}
	id, err := p.hub.Publish(r.Context(), target, req.event(), opts...)
	if err != nil {
		status, err := p.failure(err, idemKey, req.Type)
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		p.refuse(w, status, err)
		return
	}
	if rcpt.PresenceErr != nil {
		p.log.Warn("publish: presence unknown; users counted offline", "err", rcpt.PresenceErr)
	}
	switch {
	case replayed:
		p.metrics.keyReplays.Inc()
		p.log.Debug("publish replayed", "id", id, "key", capInput(idemKey), "type", req.Type)
		w.Header().Set(replayedHeader, "true")
	default:
		p.metrics.countPublish(target)
		if p.log.Enabled(r.Context(), slog.LevelDebug) { // its arguments cost allocations
			p.log.Debug("published", "id", id, "type", req.Type, "users", len(target.Users), "clients", len(target.Clients),
				"tenant", req.Tenant, "topics", len(target.Topics))
		}
	}
	resp := publishResponse{ID: id, Replayed: replayed, Online: rcpt.Online}
	if counted {
		resp.Connections = &rcpt.Connections
	}
	httpjson.Write(w, http.StatusOK, resp)
}

// failure returns how a publish the hub failed is answered: 422 for a
// key reused for another publish, 413 for an event too large, 400 for
// what the checks before it should have caught, and 503 (retry) when the
// hub is closing or its broker refused the event or could not confirm it
// — it may be stored, in some of its channels or all, and the publisher
// should try again, on another node: with its Idempotency-Key, the retry
// is stored once whatever this attempt left behind.
func (p *publishHandler) failure(err error, key, typ string) (int, error) {
	switch {
	case errors.Is(err, ssekit.ErrKeyConflict):
		p.metrics.keyConflicts.Inc()
		within := ""
		if p.keyWindow > 0 {
			within = " within --idempotency-window (" + shortDuration(p.keyWindow) + ")"
		}
		return http.StatusUnprocessableEntity, fmt.Errorf(
			"%s %s was used%s for a different publish (other addressees, type or data): nothing was published; a retry must send the same body, a new publish a new key",
			idempotencyHeader, quoteInput(key), within)
	case errors.Is(err, ssekit.ErrInvalidKey):
		return http.StatusBadRequest, fmt.Errorf("%s: %w", idempotencyHeader, err)
	case errors.Is(err, ssekit.ErrEventTooLarge):
		return http.StatusRequestEntityTooLarge, err
	case errors.Is(err, ssekit.ErrInvalidEvent), errors.Is(err, ssekit.ErrInvalidTarget), errors.Is(err, ssekit.ErrTooManyRecipients):
		// Checked before already; the hub checks again, and what it
		// refuses is still the publisher's to fix, not worth a retry.
		return http.StatusBadRequest, err
	}
	p.log.Warn("publish failed", "err", err, "type", typ)
	return http.StatusServiceUnavailable, err
}

// refuse answers a publish that failed: a 4xx for input the publisher
// must fix, a 503 to retry.
func (p *publishHandler) refuse(w http.ResponseWriter, status int, err error) {
	if p.rejected(status) {
		p.log.Info("publish refused", "status", status, "err", err)
	}
	writeError(w, status, errorCode(status, err), err.Error())
}

// rejected counts a publish, or a batch's event, refused for its input,
// and reports whether it was: a 503 (the hub or its broker could not take
// it) is not the input's fault.
func (p *publishHandler) rejected(status int) bool {
	if status == http.StatusServiceUnavailable {
		return false
	}
	p.metrics.publishRejected.WithLabelValues(fmt.Sprint(status)).Inc()
	return true
}

// errorCode is the error code of a failed publish's answer.
func errorCode(status int, err error) string {
	switch {
	case status == http.StatusServiceUnavailable:
		return "unavailable"
	case status == http.StatusRequestEntityTooLarge:
		return "payload_too_large"
	case status == http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case status == http.StatusUnprocessableEntity:
		return "idempotency_key_reused"
	case errors.Is(err, ssekit.ErrTooManyRecipients):
		return "too_many_recipients"
	}
	return "bad_request"
}

// idempotencyKey returns the request's Idempotency-Key, "" when it has
// none. A header that is present but empty is refused, not taken for no
// key: a publisher whose key came out empty means to be retried safely,
// and would not be.
func idempotencyKey(h http.Header) (string, error) {
	values, ok := h[idempotencyHeader]
	switch {
	case !ok:
		return "", nil
	case len(values) > 1:
		return "", fmt.Errorf("%d %s headers: send one", len(values), idempotencyHeader)
	case values[0] == "":
		return "", fmt.Errorf("%s is empty (did a variable come out empty?): send 1 to %d bytes of visible ASCII, such as a UUID, or leave the header out", idempotencyHeader, ssekit.MaxKeyLen)
	}
	if err := ssekit.CheckKey(values[0]); err != nil {
		return "", fmt.Errorf("%s %s (%d bytes) is not a key: send 1 to %d bytes of visible ASCII without spaces, such as a UUID", idempotencyHeader, quoteInput(values[0]), len(values[0]), ssekit.MaxKeyLen)
	}
	return values[0], nil
}

// readBody reads a JSON body of at most the larger of maxBatch and
// maxBody bytes: one publish or a batch, which ServeHTTP then holds to
// its own limit.
func (p *publishHandler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	switch ct := r.Header.Get("Content-Type"); {
	case ct == "":
		return nil, http.StatusUnsupportedMediaType, errors.New("no Content-Type: send application/json")
	case !isJSON(ct):
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content type %s: send application/json", quoteInput(ct))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max(p.maxBatch, p.maxBody)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body over %d bytes", tooBig.Limit)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("read body: %w", err)
	}
	return body, 0, nil
}

// decodePublish reads one publish: a JSON object whose keys are fields,
// spelt exactly and each at most once, so that a typo like "user" for
// "users" is an error, not a broadcast to everyone. encoding/json alone
// matches "Users" or "TYPE" case-insensitively and lets a second "users"
// replace the first, so a body could say one thing to a proxy, a log or a
// reviewer and another to the hub; and a list that is empty or null was
// once everyone. One pass: the object's keys are read as tokens, and each
// value is typed by its field alone.
func decodePublish(body []byte, fields []string) (publishItem, error) {
	if !json.Valid(body) {
		var v any
		err := json.Unmarshal(body, &v) // for the reason
		return publishItem{}, fmt.Errorf("malformed JSON body: %w", err)
	}
	return decodeFields(body, fields)
}

// decodeFields is decodePublish for a body known to be valid JSON (an
// element of a batch, which was decoded as a whole).
func decodeFields(body []byte, fields []string) (publishItem, error) {
	var req publishItem
	var seen uint16 // a bit per index in fields
	err := eachField(body, func(key string, value json.RawMessage) error {
		k := slices.Index(fields, key)
		switch {
		case k < 0:
			return fmt.Errorf("unknown field %s: the fields are %s, in lower case", quoteInput(key), strings.Join(fields, ", "))
		case seen&(1<<k) != 0:
			return fmt.Errorf("field %q appears twice: send each field once", key)
		}
		seen |= 1 << k
		if err := checkAddressee(key, value); err != nil {
			return err
		}
		if err := req.set(key, value); err != nil {
			return fmt.Errorf("malformed JSON body: %q: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return req, err
	}
	if len(req.Data) == 0 {
		req.Data = json.RawMessage("null")
	}
	return req, nil
}

// set types value as the field key of a publish.
func (req *publishItem) set(key string, value json.RawMessage) error {
	switch key {
	case "all":
		return json.Unmarshal(value, &req.All)
	case "users":
		return json.Unmarshal(value, &req.Users)
	case "clients":
		return json.Unmarshal(value, &req.Clients)
	case "tenant":
		return json.Unmarshal(value, &req.Tenant)
	case "topics":
		return json.Unmarshal(value, &req.Topics)
	case "type":
		return json.Unmarshal(value, &req.Type)
	case "data":
		req.Data = value
		return nil
	case "idempotency_key":
		return json.Unmarshal(value, &req.IdempotencyKey)
	}
	return fmt.Errorf("no such field")
}

// checkAddressee refuses an addressee field that is present but names
// nobody: null, a list that is empty, or an empty "tenant". Whoever sent
// it meant someone, or meant to leave the field out; an empty query result
// must not become everyone, nor pass for no one.
func checkAddressee(key string, value json.RawMessage) error {
	if !slices.Contains(addresseeFields, key) {
		return nil
	}
	if string(value) == "null" {
		return fmt.Errorf(`%q is null: leave it out, or name someone ("all": true for everyone)`, key)
	}
	if key == "tenant" {
		var tenant string
		if json.Unmarshal(value, &tenant) != nil {
			return errors.New(`"tenant" is not a string: a publish names one tenant id, as in "tenant": "acme"`)
		}
		if tenant == "" {
			return errors.New(`"tenant" is empty: name a tenant, or send "all": true for everyone`)
		}
		return nil
	}
	var list []json.RawMessage
	if key != "all" && json.Unmarshal(value, &list) == nil && len(list) == 0 {
		return fmt.Errorf(`%q is empty: name at least one, or send "all": true for everyone`, key)
	}
	return nil
}

// isJSON reports whether a Content-Type is JSON (application/json or a
// +json type, with any parameters). curl -d sends form-urlencoded, which
// is refused with a message that says what to send.
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// checkTarget validates the type and the addressees and returns the
// target with user ids in canonical form. Everyone is only "all": true,
// alone; more than maxRecipients addressees (0: no limit) wrap
// ssekit.ErrTooManyRecipients.
func checkTarget(req publishRequest, maxRecipients int) (ssekit.Target, error) {
	var t ssekit.Target
	if err := checkType(req.Type); err != nil {
		return t, err
	}
	some := req.Users != nil || req.Clients != nil || req.Tenant != "" || req.Topics != nil
	switch {
	case req.All && some:
		return t, errors.New(`"all": true excludes "users", "clients", "tenant" and "topics": send one or the other`)
	case req.All:
		return ssekit.Target{All: true}, nil
	case !some:
		return t, errors.New(`no addressee: name "users", "clients", "tenant" or "topics", or set "all": true to send to everyone`)
	}
	n := len(req.Users) + len(req.Clients) + len(req.Topics)
	if req.Tenant != "" {
		n++
	}
	if maxRecipients > 0 && n > maxRecipients {
		return t, fmt.Errorf("%w: %d users, clients, tenants and topics, over --max-recipients %d: split the publish", ssekit.ErrTooManyRecipients, n, maxRecipients)
	}
	for i, u := range req.Users {
		id, err := uuid.Parse(u)
		if err != nil || id == uuid.Nil {
			return t, fmt.Errorf("users[%d]: %s is not a user uuid", i, quoteInput(u))
		}
		t.Users = append(t.Users, id.String())
	}
	for i, c := range req.Clients {
		if c == "" || len(c) > maxClientIDLen || !printableASCII(c) {
			return t, fmt.Errorf("clients[%d]: %s is not a client id", i, quoteInput(c))
		}
		t.Clients = append(t.Clients, c)
	}
	if req.Tenant != "" {
		if why := ssekit.ValidName(req.Tenant); why != "" {
			return t, fmt.Errorf("tenant: %s %s", quoteInput(req.Tenant), why)
		}
		t.Tenants = []string{req.Tenant}
	}
	for i, name := range req.Topics {
		if why := ssekit.ValidName(name); why != "" {
			return t, fmt.Errorf("topics[%d]: %s %s", i, quoteInput(name), why)
		}
	}
	t.Topics = req.Topics
	return t, nil
}

// checkType refuses a type that is not typeRe, or that the library
// reserves (the hub's own, and those EventSource dispatches itself).
func checkType(typ string) error {
	if !typeRe.MatchString(typ) {
		return fmt.Errorf("type %s: want 1 to 64 of A-Z a-z 0-9 _ . : -", quoteInput(typ))
	}
	if why := ssekit.ReservedType(typ); why != "" {
		return fmt.Errorf("type %q is %s: choose another", typ, why)
	}
	return nil
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
