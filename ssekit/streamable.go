package ssekit

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"
)

// CodeStreamUnsupported is the error of a stream request whose response
// writer cannot carry an event stream, answered 500: middleware on the
// stream route wraps the writer in one that cannot flush (such as
// http.TimeoutHandler's, which Echo v4's middleware.Timeout uses) or
// that keeps a copy of the body in memory (Echo's middleware.BodyDump).
// It is the server's configuration, not the client's request, so a
// browser's EventSource is right to stop for good instead of coming back
// every few seconds into the same refusal.
const CodeStreamUnsupported = "stream_unsupported"

// streamable reports whether w can carry r's event stream. When it
// cannot, it has answered 500 CodeStreamUnsupported, with a body that
// names the writer and the fix, and logged one line naming the writer.
// When r has a deadline, the stream is served, and the hub logs a warning
// the first time: a stream served on r ends at the deadline (Echo's
// middleware.ContextTimeout), and its client then reconnects each time.
//
// It runs before anything of the stream is written, refusals with a
// retry hint included: those flush too, and a writer that cannot flush
// panics in Echo's Response.Flush.
func (h *Hub) streamable(w http.ResponseWriter, r *http.Request) bool {
	if writer, why := unstreamable(w); why != "" {
		h.cfg.Logger.Error("sse: stream refused: its response writer "+why+": skip the middleware that wraps it on the stream route",
			"writer", writer, "path", r.URL.Path)
		writeError(w, http.StatusInternalServerError, CodeStreamUnsupported,
			fmt.Sprintf("the response writer %s %s, which an event stream cannot go through: skip the middleware that wraps it on the stream route (see docs/echo.md)", writer, why))
		return false
	}
	if deadline, ok := r.Context().Deadline(); ok {
		h.warnDeadline(r, deadline)
	}
	return true
}

// The reasons unstreamable gives, completing "the response writer … ".
const (
	whyNoFlush = "cannot flush (http.TimeoutHandler's writer, as Echo v4's middleware.Timeout uses, or a wrapper with neither Flush nor Unwrap), so no event would reach the client as it is written"
	whyCopies  = "copies the body into memory (as Echo's middleware.BodyDump does), and a stream's body grows for as long as it is open"
)

// maxUnwrap bounds the walk down a chain of wrapping writers: a chain
// that long, or one that unwraps to itself, is given the benefit of the
// doubt.
const maxUnwrap = 32

// unstreamable returns the type of the writer in w's chain that cannot
// carry a stream, and why, or "" and "" when w can. The chain is w and
// what it unwraps to (Unwrap() http.ResponseWriter, the convention of
// http.ResponseController and of Echo's Response), down to the writer
// that does not unwrap: the server's own, or a wrapper's that hides it.
//
// Two rules, each about how the writer is built, not what it is called:
//
//   - The innermost writer must flush (http.Flusher, or FlushError as
//     http.ResponseController looks for). A wrapper's Flush can only pass
//     the flush down to it: Echo's Response.Flush panics when it cannot,
//     and http.TimeoutHandler's writer has neither Flush nor Unwrap.
//   - No wrapper may tee the body into memory: none may write, besides
//     the writer it unwraps to, into a writer that holds a bytes.Buffer or
//     strings.Builder (see teesIntoMemory). BodyDump's writer flushes
//     fine, so the first rule passes it; what makes it unfit is that
//     every event written stays in its buffer until the stream ends, and
//     the dump it exists for comes only then. Gzip keeps a buffer too,
//     but as its own field, until its first flush, which empties it: it
//     streams, and passes.
func unstreamable(w http.ResponseWriter) (writer, why string) {
	for range maxUnwrap {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		if teesIntoMemory(w) {
			return fmt.Sprintf("%T", w), whyCopies
		}
		inner := u.Unwrap()
		if inner == nil {
			break // it hides what it wraps: its own Flush decides
		}
		w = inner
	}
	if flushes(w) { // w is the innermost: the first rule's check alone
		return "", ""
	}
	return fmt.Sprintf("%T", w), whyNoFlush
}

// flushes reports whether a flush of w reaches the connection, by the
// first rule of unstreamable: Refuse flushes only then, so that a refusal
// through a writer that cannot stream is written when the handler
// returns instead of panicking in Echo's Response.Flush.
func flushes(w http.ResponseWriter) bool {
	for range maxUnwrap {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		inner := u.Unwrap()
		if inner == nil {
			break
		}
		w = inner
	}
	switch w.(type) {
	case http.Flusher, interface{ FlushError() error }:
		return true
	}
	return false
}

// Types the tee rule looks for and at.
var (
	responseWriterType = reflect.TypeFor[http.ResponseWriter]()
	writerType         = reflect.TypeFor[io.Writer]()
	memoryTypes        = []reflect.Type{reflect.TypeFor[*bytes.Buffer](), reflect.TypeFor[*strings.Builder]()}
)

// Bounds of the tee rule's look into a wrapper: how many pointers deep
// from the wrapper's writers (Echo v4's BodyDump buffer is two: an
// io.MultiWriter, then its writers; v5's is two: a limited writer, then
// its buffer) and how many values in all, so that a writer with large
// tables (compress/flate's, under Gzip) costs a bounded look.
const (
	teeDepth  = 3
	teeBudget = 512
)

// teesIntoMemory reports whether the wrapper w writes into memory besides
// the writer it wraps: one of its fields is an io.Writer (other than an
// http.ResponseWriter, which the chain walk looks at on its own, and than
// a field declared as a bytes.Buffer of the wrapper's own, such as Gzip's
// staging buffer) that is or holds an in-memory buffer, as
// io.MultiWriter(w, &buf) and chi's WrapResponseWriter.Tee(&buf) do. A
// wrapper whose writer field leads to a buffer it does not copy the body
// into (a log sink) is taken for a tee too: skip it on the stream route.
func teesIntoMemory(w http.ResponseWriter) bool {
	v := reflect.ValueOf(w)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return false
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return false
	}
	budget := teeBudget
	for i := range v.NumField() {
		f := v.Field(i)
		t := f.Type()
		if !t.Implements(writerType) || t.Implements(responseWriterType) || isMemory(t) {
			continue
		}
		if f.Kind() == reflect.Interface {
			if f.IsNil() {
				continue
			}
			f = f.Elem()
			if t := f.Type(); t.Implements(responseWriterType) {
				continue
			}
			if isMemory(f.Type()) {
				// A buffer declared as a writer, not as a buffer of the
				// wrapper's own: a tee (chi's WrapResponseWriter.Tee).
				return true
			}
		}
		if holdsMemory(f, teeDepth, &budget) {
			return true
		}
	}
	return false
}

// holdsMemory reports whether v holds, within depth pointers, an
// in-memory buffer; it does not look inside http.ResponseWriters.
// Reflection reads unexported fields' types and pointers without calling
// anything: looking has no effect on the writer.
func holdsMemory(v reflect.Value, depth int, budget *int) bool {
	if *budget--; *budget < 0 {
		return false
	}
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return false
		}
		return holdsMemory(v.Elem(), depth, budget)
	case reflect.Pointer:
		if v.IsNil() {
			return false
		}
		t := v.Type()
		if isMemory(t) {
			return true
		}
		if depth == 0 || t.Implements(responseWriterType) {
			return false
		}
		return holdsMemory(v.Elem(), depth-1, budget)
	case reflect.Struct:
		if v.Type().Implements(responseWriterType) {
			return false
		}
		for i := range v.NumField() {
			if mayHoldPointers(v.Type().Field(i).Type) && holdsMemory(v.Field(i), depth, budget) {
				return true
			}
		}
	case reflect.Slice, reflect.Array:
		if !mayHoldPointers(v.Type().Elem()) {
			return false
		}
		for i := range v.Len() {
			if holdsMemory(v.Index(i), depth, budget) {
				return true
			}
			if *budget < 0 {
				return false
			}
		}
	}
	return false
}

func isMemory(t reflect.Type) bool {
	for _, m := range memoryTypes {
		if t == m {
			return true
		}
	}
	return false
}

// mayHoldPointers reports whether a value of t can lead to another value:
// the look skips tables of numbers without counting their elements.
func mayHoldPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Slice:
		return true
	case reflect.Array:
		return t.Len() > 0 && mayHoldPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if mayHoldPointers(t.Field(i).Type) {
				return true
			}
		}
	}
	return false // scalars, strings; maps, channels and funcs are not looked into
}

// warnDeadline logs, once per hub, that a stream request has a deadline:
// a route with such middleware has it on every request, and one line is
// enough to name the cause.
func (h *Hub) warnDeadline(r *http.Request, deadline time.Time) {
	if h.deadlineWarned.Swap(true) {
		return
	}
	h.cfg.Logger.Warn("sse: a stream request has a deadline (Echo's middleware.ContextTimeout, or a context.WithTimeout around the handler): a stream served through its request ends at the deadline and its client reconnects each time; skip that middleware on the stream route (logged once per hub)",
		"path", r.URL.Path, "in", time.Until(deadline).Round(time.Millisecond))
}
