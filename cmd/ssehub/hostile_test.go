package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/sseclient"
)

// These tests attack the real server — run() in-process on 127.0.0.1:0,
// as main runs it — the way a hostile or broken client on the internet
// would. They assert outcomes (who is cut, what is answered, what is left
// registered), never how long anything took; latencies are logged for the
// reader of the test output.

// hostAddr returns the host:port of a running server.
func (r *running) hostAddr() string { return strings.TrimPrefix(r.url, "http://") }

// serverStatus returns the node's status (GET /sse/status).
func serverStatus(t *testing.T, base string) (clients int) {
	t.Helper()
	resp, err := http.Get(base + "/sse/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		TotalClients int `json:"total_clients"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.TotalClients
}

// opened reads a stream up to its connected event and reports whether
// it came before the stream ended.
func opened(body io.Reader) bool {
	dec := sseclient.NewDecoder(body)
	for {
		ev, err := dec.Next()
		if err != nil {
			return false
		}
		if ev.Type == "connected" {
			return true
		}
	}
}

// rawExchange writes req on a new connection to addr (concurrently with
// reading, since the server may answer and close before it has read it
// all) and returns the status code of the answer, 0 when the server closed
// without one, and what it sent.
func rawExchange(t *testing.T, addr, req string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ssetest.Patience))
	go func() { _, _ = io.WriteString(conn, req) }() // fails once the server hangs up: fine
	// Read the answer's head and a little of its body; a stream would never end.
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for got.Len() < 16<<10 {
		n, err := conn.Read(buf)
		got.Write(buf[:n])
		if err != nil || bytes.Contains(got.Bytes(), []byte("\r\n\r\n")) && !bytes.Contains(got.Bytes(), []byte("text/event-stream")) {
			break
		}
		if bytes.Contains(got.Bytes(), []byte("event: connected")) {
			break
		}
	}
	var status int
	fmt.Sscanf(got.String(), "HTTP/1.1 %d", &status)
	return status, got.String()
}

// latencies measures, until stop is closed, the time from a publish to the
// arrival of its event on an open stream, and returns the samples.
func latencies(t *testing.T, base string, s *stream, user string, stop <-chan struct{}) []time.Duration {
	t.Helper()
	var out []time.Duration
	for i := 0; ; i++ {
		select {
		case <-stop:
			return out
		default:
		}
		start := time.Now()
		body := fmt.Sprintf(`{"users":["%s"],"type":"probe","data":%d}`, user, i)
		if status, resp := publish(t, base, testKey, body); status != http.StatusOK {
			t.Fatalf("probe publish: %d %v", status, resp)
		}
		ev := s.nextOf(t, "probe")
		if string(ev.Data) != fmt.Sprint(i) {
			t.Fatalf("probe %d got %s", i, ev.Data)
		}
		out = append(out, time.Since(start))
		if len(out) >= 2000 {
			return out
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// summary formats latency samples as n, p50, p99 and max.
func summary(d []time.Duration) string {
	if len(d) == 0 {
		return "no samples"
	}
	d = slices.Clone(d)
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", len(d), at(0.50).Round(time.Microsecond), at(0.99).Round(time.Microsecond), d[len(d)-1].Round(time.Microsecond))
}

// TestSlowlorisIsCutOthersServed drips the headers of many requests one
// byte at a time. Each such connection must be closed by the server at
// --read-header-timeout, never served; meanwhile a normal subscriber keeps
// receiving what is published to it. Its publish-to-receive latency before
// and during the attack is logged, not asserted.
func TestSlowlorisIsCutOthersServed(t *testing.T) {
	t.Parallel()
	const slow = 100
	r := startRun(t, []string{"--read-header-timeout", "1s"}, testEnv)
	user := newUser()
	s := openStream(t, r.url+"/sse/stream", bearerAuth(token(t, user)))
	s.nextOf(t, "connected")

	calm := make(chan struct{})
	time.AfterFunc(time.Second, func() { close(calm) })
	before := latencies(t, r.url, s, user, calm)

	type outcome struct {
		answer string
		err    error
		cut    bool // the server closed the connection
	}
	results := make(chan outcome, slow)
	start := time.Now()
	for i := range slow {
		go func() {
			conn, err := net.Dial("tcp", r.hostAddr())
			if err != nil {
				results <- outcome{err: err}
				return
			}
			defer conn.Close()
			_ = conn.SetReadDeadline(time.Now().Add(ssetest.Patience))
			head := fmt.Sprintf("GET /sse/stream?access_token=%s HTTP/1.1\r\nHost: x\r\nX-Drip-%d: ", token(t, newUser()), i)
			if _, err := io.WriteString(conn, head); err != nil {
				results <- outcome{err: err}
				return
			}
			read := make(chan outcome, 1)
			go func() {
				b, err := io.ReadAll(conn)
				var ne net.Error
				read <- outcome{answer: string(b), cut: !(errors.As(err, &ne) && ne.Timeout())}
			}()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case o := <-read:
					results <- o
					return
				case <-tick.C:
					_, _ = conn.Write([]byte("a")) // one byte at a time, never the end of the headers
				}
			}
		}()
	}
	allCut := make(chan struct{})
	var cut atomic.Int32
	go func() {
		for range slow {
			o := <-results
			if o.err != nil {
				t.Errorf("slow client: %v", o.err)
			}
			if !o.cut {
				t.Errorf("slow client still connected at the Patience deadline")
			}
			if o.answer != "" && !strings.HasPrefix(o.answer, "HTTP/1.1 408") {
				t.Errorf("slow client got %q, want nothing or a 408", o.answer)
			}
			cut.Add(1)
		}
		close(allCut)
	}()
	during := latencies(t, r.url, s, user, allCut)
	t.Logf("%d slow clients cut after %v (read-header-timeout 1s)", cut.Load(), time.Since(start).Round(time.Millisecond))
	t.Logf("publish→receive latency of another subscriber: before %s; during the attack %s", summary(before), summary(during))
	if got := serverStatus(t, r.url); got != 1 {
		t.Errorf("%d streams registered, want only the normal subscriber's", got)
	}
}

// TestOversizedAndMalformedHeaders sends requests for a stream, each with
// a valid token, whose headers are too large or malformed: each must get a
// 4xx (431 for size) and none may open a stream — except the two forms
// RFC 9112 lets a server accept, which net/http accepts safely: a folded
// header line (§5.2: replaced by a space) and Content-Length with
// Transfer-Encoding (§6.3: Transfer-Encoding wins, and a stream request's
// body is never read).
func TestOversizedAndMalformedHeaders(t *testing.T) {
	t.Parallel()
	r := startRun(t, nil, testEnv)
	path := "/sse/stream?access_token=" + token(t, newUser())
	line := "GET " + path + " HTTP/1.1\r\n"
	cases := []struct {
		name string
		req  string
		want []int // acceptable statuses
	}{
		{"1 MiB header", line + "Host: x\r\nX-Big: " + strings.Repeat("a", 1<<20) + "\r\n\r\n", []int{431}},
		{"10,000 small headers", line + "Host: x\r\n" + strings.Repeat("X-A: b\r\n", 10_000) + "\r\n", []int{431}},
		{"1 MiB Last-Event-ID", line + "Host: x\r\nLast-Event-ID: " + strings.Repeat("9", 1<<20) + "\r\n\r\n", []int{431}},
		{"no colon", line + "Host: x\r\nNoColonHere\r\n\r\n", []int{400}},
		{"space before colon", line + "Host: x\r\nX-A : b\r\n\r\n", []int{400}},
		{"NUL in a value", line + "Host: x\r\nX-A: b\x00c\r\n\r\n", []int{400}},
		{"CR in a value", line + "Host: x\r\nX-A: b\rc\r\n\r\n", []int{400}},
		{"bad name", line + "Host: x\r\nX(A): b\r\n\r\n", []int{400}},
		{"no Host", line + "\r\n", []int{400}},
		{"two Hosts", line + "Host: x\r\nHost: y\r\n\r\n", []int{400}},
		{"folded line", line + "Host: x\r\nX-A: b\r\n c\r\n\r\n", []int{400, 200}},
		{"bad version", "GET " + path + " HTTP/9.9\r\nHost: x\r\n\r\n", []int{400, 505}},
		{"no version", "GET " + path + "\r\nHost: x\r\n\r\n", []int{400}},
		{"bad method token", "G(T " + path + " HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}},
		{"bad chunked body", line + "Host: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", []int{400, 501}},
		{"smuggling: CL and TE", line + "Host: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{400, 200}},
		{"two Content-Lengths", line + "Host: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", []int{400}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, answer := rawExchange(t, r.hostAddr(), tc.req)
			if strings.Contains(answer, "text/event-stream") && !slices.Contains(tc.want, http.StatusOK) {
				t.Fatalf("opened a stream: %.200q", answer)
			}
			if !slices.Contains(tc.want, status) {
				t.Errorf("status %d (%.80q), want one of %v", status, answer, tc.want)
			}
		})
	}
	ssetest.Eventually(t, "no stream left registered", func() bool { return serverStatus(t, r.url) == 0 })
}

// TestHugeLastEventIDQuery resumes from a 1 MB ?lastEventId= (too large
// for the request line: 431) and from one that fits (60 KB: the stream
// opens with a resync that does not echo it).
func TestHugeLastEventIDQuery(t *testing.T) {
	t.Parallel()
	r := startRun(t, nil, testEnv)
	tok := token(t, newUser())
	status, answer := rawExchange(t, r.hostAddr(), "GET /sse/stream?access_token="+tok+"&lastEventId="+strings.Repeat("9", 1<<20)+" HTTP/1.1\r\nHost: x\r\n\r\n")
	if status != http.StatusRequestHeaderFieldsTooLarge && status != http.StatusRequestURITooLong {
		t.Errorf("1 MB lastEventId: status %d (%.80q), want 431 or 414", status, answer)
	}
	for _, id := range []string{strings.Repeat("9", 60<<10), strings.Repeat("x", 60<<10)} {
		s := openStream(t, r.url+"/sse/stream?lastEventId="+id, bearerAuth(tok))
		opening := s.nextOf(t, "connected")
		resync := s.nextOf(t, "resync")
		if bytes.Contains(opening.Data, []byte(`"resumed":true`)) || len(resync.Data) > 200 || bytes.Contains(resync.Data, []byte(id[:200])) {
			t.Errorf("60 KB id: opening %.100s, resync %.100s: want a fresh stream and a short resync", opening.Data, resync.Data)
		}
		s.close()
	}
}

// TestConnectDisconnectStormFromOneAddress opens and drops thousands of
// streams as fast as it can from one address. The address's rate limit
// must engage (streams past the burst and rate are refused with a retry
// hint), and afterwards the server must be back where it started: no
// stream registered, goroutines and open descriptors at their baseline.
//
// Not parallel: it compares the process's goroutine count and open files
// before and after, which other tests would disturb.
func TestConnectDisconnectStormFromOneAddress(t *testing.T) {
	const workers, cycles = 8, 400 // 3,200 connect/disconnect cycles
	r := startRun(t, []string{"--stream-rate-ip", "5", "--stream-burst-ip", "20", "--stream-rate-user", "0"}, testEnv)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	baseGoroutines := metricValue(t, r.url, "go_goroutines")
	baseFDs := metricValue(t, r.url, "process_open_fds")

	var served, refused atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := token(t, newUser())
			for i := range cycles {
				ctx, cancel := context.WithTimeout(context.Background(), ssetest.Patience)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/sse/stream", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				if err != nil {
					cancel()
					t.Errorf("worker %d cycle %d: %v", w, i, err)
					return
				}
				if opened(resp.Body) {
					served.Add(1)
				} else {
					refused.Add(1)
				}
				if i%2 == 0 {
					cancel() // hang up at once…
					resp.Body.Close()
				} else {
					resp.Body.Close() // …or after closing the body
					cancel()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	client.CloseIdleConnections()
	total := served.Load() + refused.Load()
	t.Logf("%d cycles in %v (%.0f/s): %d served, %d refused with a retry hint", total, elapsed.Round(time.Millisecond),
		float64(total)/elapsed.Seconds(), served.Load(), refused.Load())
	// The bucket allows the burst plus the rate over the time elapsed.
	if allowed := int64(20 + 5*elapsed.Seconds() + 1); served.Load() > allowed {
		t.Errorf("%d streams served in %v, more than the limit allows (%d)", served.Load(), elapsed, allowed)
	}
	if refused.Load() == 0 {
		t.Errorf("no stream refused: the rate limit did not engage")
	}
	ssetest.Eventually(t, "streams unregistered", func() bool { return serverStatus(t, r.url) == 0 })
	var g, fds float64
	ssetest.Eventually(t, "goroutines and fds back to baseline", func() bool {
		g, fds = metricValue(t, r.url, "go_goroutines"), metricValue(t, r.url, "process_open_fds")
		// A little slack for the scrape's own connection.
		return g <= baseGoroutines+4 && fds <= baseFDs+2
	})
	t.Logf("goroutines %v → %v, open fds %v → %v", baseGoroutines, g, baseFDs, fds)
	if got := metricValue(t, r.url, `ssekit_rate_limited_total{endpoint="stream"}`); int64(got) != refused.Load() {
		t.Errorf("ssekit_rate_limited_total{endpoint=stream} = %v, want %d", got, refused.Load())
	}
}

// TestPathAndMethodAbuse sends every method to every route and a set of
// crafted paths: no answer may be a 5xx, only GET (or HEAD) on the stream
// route with a token may open a stream, nothing outside the embedded demo
// files is served, and TRACE echoes nothing.
func TestPathAndMethodAbuse(t *testing.T) {
	t.Parallel()
	r := startRun(t, nil, testEnv)
	tok := token(t, newUser())
	routes := []string{"/sse/stream", "/sse/publish", "/sse/status", "/metrics", "/healthz", "/", "/demo/token", "/demo/config", "/assets/", "/nope"}
	methods := []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW", "PRI"}
	for _, route := range routes {
		for _, m := range methods {
			req := fmt.Sprintf("%s %s?access_token=%s HTTP/1.1\r\nHost: x\r\nX-Secret-Header: hunter2\r\nContent-Length: 2\r\n\r\n{}", m, route, tok)
			status, answer := rawExchange(t, r.hostAddr(), req)
			isStream := strings.Contains(answer, "text/event-stream")
			switch {
			case status == 0 || status >= 500:
				t.Errorf("%s %s: status %d (%.80q)", m, route, status, answer)
			case isStream && !(route == "/sse/stream" && m == "GET"):
				t.Errorf("%s %s opened a stream", m, route)
			case strings.Contains(answer, "hunter2"):
				t.Errorf("%s %s echoed the request's headers", m, route)
			}
		}
	}
	paths := []string{
		"/sse/stream/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/assets/../../../../etc/passwd",
		"/assets/%2e%2e/%2e%2e/main.go", "/assets/..%2fmain.go", "/assets/%2e%2e%2fserver.go", "//sse/stream", "/sse//stream",
		"/SSE/STREAM", "/sse/stream/", "/sse/stream;x", "/sse/stream%00", "/sse/stream%2f", "/sse/%73tream",
		"/" + strings.Repeat("a", 8<<10), "/sse/stream?" + strings.Repeat("&", 10_000), "*",
	}
	for _, p := range paths {
		status, answer := rawExchange(t, r.hostAddr(), "GET "+p+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+"\r\n\r\n")
		switch {
		case status == 0 || status >= 500:
			t.Errorf("GET %.60s: status %d (%.80q)", p, status, answer)
		case strings.Contains(answer, "root:") || strings.Contains(answer, "package main"):
			t.Errorf("GET %.60s served a file from outside the demo assets", p)
		case strings.Contains(answer, "text/event-stream") && !strings.HasPrefix(p, "/sse/stream?") && p != "/sse/%73tream":
			// %73 is 's': /sse/%73tream is /sse/stream, legitimately.
			t.Errorf("GET %.60s opened a stream", p)
		}
	}
	ssetest.Eventually(t, "abusive streams gone", func() bool { return serverStatus(t, r.url) == 0 })
}

// TestNeverReadingClientIsCut opens a stream and never reads it while big
// events are broadcast: once its socket buffers are full, its writes stall
// and --client-timeout must cut it, while another subscriber keeps getting
// every event. The reading subscriber's publish-to-receive latency for the
// same events, before the stalled client connects and while it stalls, is
// logged, not asserted.
func TestNeverReadingClientIsCut(t *testing.T) {
	t.Parallel()
	// A buffer large enough that the stalled stream is cut by its write
	// deadline, not by overflowing its queue first.
	r := startRun(t, []string{"--client-timeout", "1s", "--buffer-size", "4096", "--max-event-size", "65536"}, testEnv)
	user := newUser()
	s := openStream(t, r.url+"/sse/stream", bearerAuth(token(t, user)))
	s.nextOf(t, "connected")
	pad := strings.Repeat("x", 60<<10)
	n := 0
	// bigEvent broadcasts a 60 KB event and returns how long the reading
	// subscriber took to have it.
	bigEvent := func() time.Duration {
		start := time.Now()
		body := fmt.Sprintf(`{"all":true,"type":"big","data":{"n":%d,"pad":"%s"}}`, n, pad)
		if status, out := publish(t, r.url, testKey, body); status != http.StatusOK {
			t.Fatalf("publish %d: %d %v", n, status, out)
		}
		var got struct{ N int }
		if err := s.nextOf(t, "big").Decode(&got); err != nil || got.N != n {
			t.Fatalf("the reading subscriber got n=%d (%v), want %d", got.N, err, n)
		}
		n++
		return time.Since(start)
	}
	var before, during []time.Duration
	for range 50 {
		before = append(before, bigEvent())
	}

	conn, err := net.Dial("tcp", r.hostAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetReadBuffer(4 << 10) // fill up sooner
	}
	if _, err := io.WriteString(conn, "GET /sse/stream?access_token="+token(t, newUser())+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	ssetest.Eventually(t, "both streams registered", func() bool { return serverStatus(t, r.url) == 2 })
	for metricValue(t, r.url, `ssekit_disconnects_total{reason="write_error"}`) == 0 {
		if len(during) == 2000 { // 120 MB: far beyond any socket buffer
			t.Fatalf("the stalled stream was never cut")
		}
		during = append(during, bigEvent())
	}
	t.Logf("stalled stream cut by --client-timeout 1s after %d events of 60 KB", len(during))
	t.Logf("publish→receive latency of the reading subscriber, 60 KB events: alone %s; while the other stalled %s", summary(before), summary(during))
	ssetest.Eventually(t, "only the reading stream left", func() bool { return serverStatus(t, r.url) == 1 })
}

// TestStreamsLeaveNoMemoryBehind opens and closes thousands of streams,
// each of a new user (as churn does), and checks that the Go heap after
// two collections has not grown by more than a few bytes per stream: a
// stream, its user's registration, its limiter entry and its connection
// are all released when it ends. (A process that held many streams at
// once keeps some memory at its high-water mark — the runtime never frees
// goroutine descriptors, and maps do not shrink — so this opens them one
// after another.)
//
// Not parallel: it reads the process's heap.
func TestStreamsLeaveNoMemoryBehind(t *testing.T) {
	// Without the per-user rate limiter, which keeps each user's bucket for
	// a few seconds on purpose (TestLimiterSetForgetsIdleKeys bounds it).
	ta := newTestApp(t, testConfig(t, "--stream-rate-ip", "0", "--stream-rate-user", "0"), nil)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	cycle := func(n int) {
		for range n {
			req, _ := http.NewRequest(http.MethodGet, ta.srv.URL+"/sse/stream", nil)
			req.Header.Set("Authorization", "Bearer "+token(t, newUser()))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			opened(resp.Body)
			resp.Body.Close()
		}
		client.CloseIdleConnections()
		ssetest.Eventually(t, "streams unregistered", func() bool { return ta.hub.GetTotalClientCount() == 0 })
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC() // the second frees what the first found only unreachable
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	cycle(200) // warm up: pools, maps, the connection machinery
	before := heap()
	const n = 3000
	cycle(n)
	after := heap()
	perStream := (float64(after) - float64(before)) / n
	t.Logf("heap %d → %d bytes after %d streams: %.0f bytes per stream", before, after, n, perStream)
	if perStream > 256 {
		t.Errorf("%.0f bytes of heap kept per stream opened and closed", perStream)
	}
}

// TestRefusalsEchoLittle sends 40 KB of hostile input where a refusal
// quotes what it refuses — a token's sub, a user id, a client id, a type,
// a field name, a Content-Type — and checks that neither the answer nor
// any log line grows with it: an unauthenticated client must not be able
// to make the hub write 40 KB of its choosing to the logs per request.
func TestRefusalsEchoLittle(t *testing.T) {
	t.Parallel()
	r := startRun(t, nil, testEnv)
	huge := strings.Repeat("A", 40<<10)
	send := func(req *http.Request) (int, string) {
		t.Helper()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	stream := func(tok string) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, r.url+"/sse/stream", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		return req
	}
	post := func(ctype, body string) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, r.url+"/sse/publish", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testKey)
		req.Header.Set("Content-Type", ctype)
		return req
	}
	const js = "application/json"
	cases := []struct {
		name   string
		req    *http.Request
		status int
	}{
		{"40 KB sub", stream(signHS(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": huge, "exp": time.Now().Add(time.Hour).Unix()})), 401},
		{"40 KB iss", stream(signHS(t, jwt.SigningMethodHS256, testSecret+"-other", jwt.MapClaims{"sub": newUser(), "iss": huge, "exp": time.Now().Add(time.Hour).Unix()})), 401},
		{"40 KB not-a-token", stream(huge), 401},
		{"40 KB tenant claim", stream(signHS(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": newUser(), "tenant_id": huge, "exp": time.Now().Add(time.Hour).Unix()})), 401},
		{"40 KB topic pattern", stream(signHS(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": newUser(), "allowed_topics": []string{huge + "*"}, "exp": time.Now().Add(time.Hour).Unix()})), 401},
		{"40 KB tenant", post(js, `{"tenant":"`+huge+`","type":"x"}`), 400},
		{"40 KB topic", post(js, `{"topics":["`+huge+`"],"type":"x"}`), 400},
		{"40 KB user id", post(js, `{"users":["`+huge+`"],"type":"x"}`), 400},
		{"40 KB client id", post(js, `{"clients":["`+huge+`"],"type":"x"}`), 400},
		{"40 KB type", post(js, `{"all":true,"type":"`+huge+`"}`), 400},
		{"40 KB field name", post(js, `{"`+huge+`":1,"all":true,"type":"x"}`), 400},
		{"40 KB content type", post("text/"+huge, `{"all":true,"type":"x"}`), 415},
	}
	for _, tc := range cases {
		status, body := send(tc.req)
		if status != tc.status {
			t.Errorf("%s: status %d, want %d (%.200s)", tc.name, status, tc.status, body)
		}
		if len(body) > 512 {
			t.Errorf("%s: answer of %d bytes: %.200s…", tc.name, len(body), body)
		}
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	refusals := 0
	for _, line := range strings.Split(r.logs.String(), "\n") {
		if strings.Contains(line, "refused") {
			refusals++
		}
		if len(line) > 1024 {
			t.Errorf("log line of %d bytes: %.200s…", len(line), line)
		}
	}
	if refusals != len(cases) {
		t.Errorf("%d refusals logged, want %d", refusals, len(cases))
	}
}
