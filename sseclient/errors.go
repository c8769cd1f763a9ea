package sseclient

import (
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
}

func (e *StatusError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("sseclient: unexpected status %s (retry after %v)", e.Status, e.RetryAfter)
	}
	return fmt.Sprintf("sseclient: unexpected status %s", e.Status)
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
