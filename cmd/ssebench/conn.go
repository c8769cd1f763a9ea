package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// readBufSize sizes each connection's socket and parse buffers: large
// enough that under load one read system call carries many events.
const readBufSize = 16 << 10

// streamTarget is one connection's request, expanded from the templates.
type streamTarget struct {
	addr    string // host:port
	request []byte // the raw HTTP/1.1 GET
}

// buildRequest expands the URL and header templates for connection i and
// writes the GET by hand: the generator speaks HTTP/1.1 over a plain TCP
// connection so that a subscriber costs one goroutine and two buffers, not
// an http.Transport's machinery.
func buildRequest(rawURL string, headers []string, vars *strings.Replacer) (streamTarget, error) {
	u, err := url.Parse(vars.Replace(rawURL))
	if err != nil {
		return streamTarget{}, fmt.Errorf("stream url: %w", err)
	}
	if u.Scheme != "http" {
		return streamTarget{}, fmt.Errorf("stream url %q: only http:// is supported", rawURL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n", u.RequestURI(), u.Host)
	for _, h := range headers {
		fmt.Fprintf(&b, "%s\r\n", vars.Replace(h))
	}
	b.WriteString("\r\n")
	return streamTarget{addr: host, request: []byte(b.String())}, nil
}

// dialStream opens one stream: connect from src, send the request, read
// the response head. It returns the connection and the decoded body (the
// chunked encoding undone) once the server answered 200.
func dialStream(ctx context.Context, src net.IP, t streamTarget, timeout time.Duration) (net.Conn, io.Reader, error) {
	d := net.Dialer{Timeout: timeout}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
	}
	c, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		// Close with a reset: no TIME_WAIT, so back-to-back runs never run
		// out of ports.
		_ = tc.SetLinger(0)
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(t.request); err != nil {
		c.Close()
		return nil, nil, err
	}
	br := bufio.NewReaderSize(c, readBufSize)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, nil, fmt.Errorf("status %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		c.Close()
		return nil, nil, fmt.Errorf("content type %q", ct)
	}
	_ = c.SetDeadline(time.Time{})
	return c, resp.Body, nil
}
