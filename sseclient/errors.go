package sseclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Errors a subscription reports. Those marked permanent end Subscribe;
// the others are reported with StateReconnecting and retried.
var (
	// ErrContentType reports a 200 response that is not text/event-stream.
	// Permanent: a browser's EventSource gives up on it too.
	ErrContentType = errors.New("sseclient: response is not text/event-stream")

	// ErrTooManyRedirects reports a redirect chain longer than
	// Client.MaxRedirects, such as a redirect loop. Permanent.
	ErrTooManyRedirects = errors.New("sseclient: too many redirects")

	// ErrStreamClosed reports that the server ended the stream cleanly; the
	// client reconnects.
	ErrStreamClosed = errors.New("sseclient: server closed the stream")

	// ErrIdleTimeout reports a connection on which no event arrived for
	// Client.IdleTimeout; the client drops it and reconnects.
	ErrIdleTimeout = errors.New("sseclient: no event within the idle timeout")
)

// StatusError reports a response whose status is not 200. Subscribe
// returns it for a status that will not change by retrying (4xx but 408
// and 429, unfollowed 3xx, unexpected 1xx/2xx); 408, 429 and 5xx are
// retried, and reported with StateReconnecting.
type StatusError struct {
	// StatusCode and Status are the response's.
	StatusCode int
	Status     string
	// RetryAfter is the delay the server asked for with Retry-After on a
	// 429 or 503, 0 if none.
	RetryAfter time.Duration
	// Body is the start of the response's body (at most 4 KiB): an ssekit
	// hub says there why it refused, as JSON with an "error" code, a
	// "message" for a person and the refused "topics".
	Body []byte
}

// maxErrorBody bounds StatusError.Body.
const maxErrorBody = 4 << 10

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("sseclient: unexpected status %s", e.Status)
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %v)", e.RetryAfter)
	}
	var reason struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(e.Body, &reason) == nil && reason.Message != "" {
		msg += ": " + reason.Message
	}
	return msg
}

// Temporary reports whether retrying may succeed: 408, 429 and 5xx.
func (e *StatusError) Temporary() bool {
	switch c := e.StatusCode; {
	case c == http.StatusRequestTimeout, c == http.StatusTooManyRequests:
		return true
	case c >= 500 && c <= 599:
		return true
	}
	return false
}
