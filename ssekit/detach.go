package ssekit

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"time"
)

// controller is what a stream needs of its connection beside Write: an
// *http.ResponseController, or a detached connection's rawConn.
type controller interface {
	Flush() error
	SetWriteDeadline(time.Time) error
}

// rawConn is a detached stream's connection: the stream writes to the
// socket itself, so there is nothing to flush.
type rawConn struct{ net.Conn }

func (rawConn) Flush() error { return nil }

// detach takes an HTTP/1.x connection over from net/http (see
// Config.DetachStreams) and returns it with the head of a 200 event-stream
// response carrying the headers set on w. The body is delimited by the
// connection's close, as HTTP/1.x allows, so frames go to the socket as
// they are, without chunk framing. The caller sends the head with the
// stream's first frames, as net/http sends its headers with the first
// flush: a client must not see the stream open before the stream has its
// position, or an event published in between would be behind it. detach
// fails on a connection that cannot be hijacked (HTTP/2, a wrapping
// ResponseWriter without Hijack); the caller then serves the stream
// through w.
func detach(w http.ResponseWriter) (net.Conn, []byte, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Whatever net/http buffered is dropped with brw: a client pipelining
	// a request behind an event stream would never get its answer anyway.
	_ = brw
	hdr := w.Header()
	hdr.Set("Connection", "close")
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = hdr.Write(&head)
	head.WriteString("\r\n")
	return conn, head.Bytes(), nil
}

// watch returns a context that is cancelled when the client closes conn,
// as net/http's request context is for a stream it serves. It reads on a
// goroutine of its own, which returns once conn is closed; done is closed
// then. A client sends nothing after its GET: anything it does send ends
// the stream too.
func watch(conn net.Conn) (ctx context.Context, done <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	d := make(chan struct{})
	go func() {
		defer close(d)
		defer cancel()
		var b [1]byte
		_, _ = conn.Read(b[:])
	}()
	return ctx, d
}
