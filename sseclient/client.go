package sseclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"net/url"
	"time"
)

// Client subscribes to event streams. Its zero value is ready to use;
// every field's zero value means its default. A Client is safe for
// concurrent use as long as its fields are not changed meanwhile; each
// Subscribe call has its own connection and state.
type Client struct {
	// HTTPClient makes the requests. Defaults to http.DefaultClient. Its
	// Timeout bounds a whole stream, so leave it 0 and use IdleTimeout.
	// Subscribe uses a copy whose CheckRedirect also enforces MaxRedirects.
	HTTPClient *http.Client

	// Header is added to every request, e.g. Authorization: Bearer …
	// Defaults to none.
	Header http.Header

	// Topics are the topics the stream asks the server for: each is
	// added to the URL as a topic query parameter (?topic=a&topic=b, the
	// ssekit hub's TopicParam), on the first request and on every
	// reconnection. Topics the URL already names stay. Defaults to none.
	Topics []string

	// LastEventID is sent with the first request, to resume a stream where
	// an earlier subscription left it. Defaults to "" (a fresh stream).
	LastEventID string

	// MaxEventSize bounds one event's data, and any line, in bytes; a larger
	// event ends Subscribe with an error wrapping ErrEventTooLarge (a replay
	// would only send it again). Defaults to 1 MiB.
	MaxEventSize int

	// DefaultRetry is the base reconnection delay until the server sends a
	// retry field. Defaults to 3s, as browsers.
	DefaultRetry time.Duration

	// MaxDelay caps every reconnection delay, the server's retry field
	// included (but not Retry-After). Defaults to 30s.
	MaxDelay time.Duration

	// IdleTimeout drops and reconnects a connection on which no event
	// arrived for this long, such as a stalled proxy or a server dripping
	// bytes that never make an event. Set it above the server's heartbeat
	// interval (the hub's is 30s). Defaults to 0: no timeout.
	IdleTimeout time.Duration

	// MaxRedirects is how many redirects one request follows; one more
	// ends Subscribe with ErrTooManyRedirects. Defaults to 10.
	MaxRedirects int

	// OnStateChange, if not nil, is called on Subscribe's goroutine at each
	// change of state, so it must return quickly. Defaults to nil.
	OnStateChange func(StateChange)

	// randN draws the jitter, uniform in [0, n); nil means rand.Int64N.
	// Tests set it to make delays exact.
	randN func(n int64) int64
}

// Subscribe subscribes to url with a zero Client: see Client.Subscribe.
func Subscribe(ctx context.Context, url string, handle func(Event) error) error {
	var c Client
	return c.Subscribe(ctx, url, handle)
}

// Subscribe reads the event stream at url and calls handle (not nil) with
// each event, in order, on the calling goroutine, until ctx is done, handle returns an
// error, or the server refuses for good. ctx bounds the whole
// subscription; Subscribe starts no goroutine that outlives it.
//
// When the connection drops or the server ends the stream, Subscribe waits
// and reconnects, sending as Last-Event-ID the id of the last event that
// had one. The delay is drawn uniformly from [0, d] where d starts at the
// server's retry field (or DefaultRetry) and doubles at every failed
// attempt up to MaxDelay; a connection that delivered an event starts the
// doubling over. A 429 or 503 with Retry-After waits at least that long.
//
// Subscribe returns:
//   - ctx's error when ctx is done;
//   - handle's error, as is, when handle fails;
//   - nil when the server answers 204 No Content, the standard way to tell
//     a client to stop;
//   - a *StatusError for a status that retrying will not change (401, 403,
//     404, …), or an error wrapping ErrContentType, ErrTooManyRedirects or
//     ErrEventTooLarge.
//
// Every other failure (network errors, 5xx, 408, 429, a closed stream, the
// idle timeout) is retried and reported with StateReconnecting.
//
// Every event reaches handle, the hub's own included ("connected",
// "heartbeat", "resync"): filter on Event.Type.
func (c *Client) Subscribe(ctx context.Context, url string, handle func(Event) error) error {
	s, err := c.newSubscription(url, handle)
	if err != nil {
		return err
	}
	return s.run(ctx)
}

// errStopIteration ends the Subscribe behind Events when the loop breaks.
var errStopIteration = errors.New("sseclient: iteration stopped")

// Events returns the stream at url as an iterator, for a range loop: it
// yields each event with a nil error, and at the end the error Subscribe
// would have returned, if not nil. Breaking out of the loop ends the
// subscription. The iterator runs Subscribe on the ranging goroutine.
func (c *Client) Events(ctx context.Context, url string) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		err := c.Subscribe(ctx, url, func(ev Event) error {
			if !yield(ev, nil) {
				return errStopIteration
			}
			return nil
		})
		if err != nil && err != errStopIteration {
			yield(Event{}, err)
		}
	}
}

// subscription is the state of one Subscribe call.
type subscription struct {
	c      *Client
	hc     *http.Client
	url    string
	handle func(Event) error
	lastID string
	bo     *backoff
}

func (c *Client) newSubscription(rawURL string, handle func(Event) error) (*subscription, error) {
	if handle == nil {
		return nil, errors.New("sseclient: nil handler")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("sseclient: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("sseclient: unsupported URL scheme %q", u.Scheme)
	}
	if len(c.Topics) > 0 {
		// Appended rather than re-encoded, so that the URL's own query
		// reaches the server as the caller wrote it.
		topics := url.Values{TopicParam: c.Topics}.Encode()
		if u.RawQuery != "" {
			topics = u.RawQuery + "&" + topics
		}
		u.RawQuery = topics
		rawURL = u.String()
	}
	base := c.HTTPClient
	if base == nil {
		base = http.DefaultClient
	}
	hc := *base
	maxRedirects := c.MaxRedirects
	if maxRedirects <= 0 {
		maxRedirects = 10
	}
	check := base.CheckRedirect
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) > maxRedirects {
			return fmt.Errorf("%w: stopped after %d", ErrTooManyRedirects, maxRedirects)
		}
		if check != nil {
			return check(req, via)
		}
		return nil
	}
	retry := c.DefaultRetry
	if retry <= 0 {
		retry = 3 * time.Second
	}
	maxDelay := c.MaxDelay
	if maxDelay <= 0 {
		maxDelay = 30 * time.Second
	}
	bo := newBackoff(retry, maxDelay)
	if c.randN != nil {
		bo.randN = c.randN
	}
	return &subscription{
		c: c, hc: &hc, url: rawURL, handle: handle,
		lastID: c.LastEventID,
		bo:     bo,
	}, nil
}

// failure is why one connection ended.
type failure struct {
	err       error
	permanent bool // return err from Subscribe
	handler   bool // err is handle's, returned as is
	stop      bool // 204: return nil
	delivered bool // the connection dispatched at least one event
	after     time.Duration
}

func (s *subscription) run(ctx context.Context) error {
	for {
		f := s.connect(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case f.handler, f.permanent:
			return f.err
		case f.stop:
			return nil
		}
		if f.delivered {
			s.bo.reset()
		}
		delay := max(s.bo.next(), f.after)
		s.notify(StateChange{State: StateReconnecting, LastEventID: s.lastID, Delay: delay, Err: f.err, Attempt: s.bo.failures})
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (s *subscription) notify(sc StateChange) {
	if s.c.OnStateChange != nil {
		s.c.OnStateChange(sc)
	}
}

// connect makes one request and reads its stream to the end.
func (s *subscription) connect(ctx context.Context) failure {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return failure{err: fmt.Errorf("sseclient: %w", err), permanent: true}
	}
	for k, vs := range s.c.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if s.lastID != "" {
		req.Header.Set("Last-Event-ID", s.lastID)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return failure{err: err, permanent: errors.Is(err, ErrTooManyRedirects)}
	}
	defer resp.Body.Close()
	if f, ok := checkResponse(resp); !ok {
		return f
	}
	s.notify(StateChange{State: StateConnected, LastEventID: s.lastID, Resumed: s.lastID != ""})
	return s.read(ctx, cancel, resp.Body)
}

// checkResponse sorts out the responses that carry no stream.
func checkResponse(resp *http.Response) (failure, bool) {
	switch resp.StatusCode {
	case http.StatusOK:
		ct := resp.Header.Get("Content-Type")
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "text/event-stream" {
			return failure{err: fmt.Errorf("%w: Content-Type %q", ErrContentType, ct), permanent: true}, false
		}
		return failure{}, true
	case http.StatusNoContent:
		return failure{stop: true}, false
	}
	e := &StatusError{StatusCode: resp.StatusCode, Status: resp.Status}
	e.Body, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if c := resp.StatusCode; c == http.StatusTooManyRequests || c == http.StatusServiceUnavailable {
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return failure{err: e, permanent: !e.Temporary(), after: e.RetryAfter}, false
}

// read hands the stream's events to handle until it ends.
func (s *subscription) read(ctx context.Context, cancel context.CancelCauseFunc, body io.Reader) failure {
	dec := NewDecoder(body)
	dec.SetMaxEventSize(s.c.MaxEventSize)
	// As browsers do: an event before the first id field still carries the
	// id the stream resumed from.
	dec.SetLastEventID(s.lastID)
	var idle *time.Timer
	if d := s.c.IdleTimeout; d > 0 {
		idle = time.AfterFunc(d, func() { cancel(ErrIdleTimeout) })
		defer idle.Stop()
	}
	delivered := false
	for {
		ev, err := dec.Next()
		// Read the position after every Next: a dispatch without data moves
		// it without an event, and a failed Next may follow one.
		s.lastID = dec.LastEventID()
		if d, ok := dec.Retry(); ok {
			s.bo.setBase(d)
		}
		if err != nil {
			f := failure{delivered: delivered}
			switch {
			case err == io.EOF:
				f.err = ErrStreamClosed
			case errors.Is(err, ErrEventTooLarge):
				f.err, f.permanent = err, true
			case errors.Is(context.Cause(ctx), ErrIdleTimeout):
				f.err = fmt.Errorf("%w (%v)", ErrIdleTimeout, s.c.IdleTimeout)
			default:
				f.err = fmt.Errorf("sseclient: read stream: %w", err)
			}
			return f
		}
		delivered = true
		if idle != nil {
			idle.Reset(s.c.IdleTimeout)
		}
		if ev.Type == ResyncType {
			s.notify(StateChange{State: StateResync, LastEventID: s.lastID})
		}
		if err := s.handle(ev); err != nil {
			return failure{err: err, handler: true}
		}
	}
}
