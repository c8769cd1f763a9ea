package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/sseclient"
)

// Secrets of the cluster tests' processes.
const (
	clusterSecret = "cluster-test-secret-0123456789abcdef"
	clusterKey    = "cluster-test-publish-key"
)

// clusterPatience bounds every wait of the cluster tests: a net against a
// hang on a loaded machine, never a timing assertion.
const clusterPatience = 30 * time.Second

// clusterRedisAddr is the shared Redis: SSEKIT_REDIS_ADDR or the local
// default.
func clusterRedisAddr() string {
	if a := os.Getenv("SSEKIT_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// needService skips the test, loudly, when a service it needs is missing,
// or fails it under SSEKIT_REQUIRE_SERVICES=1.
func needService(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("SSEKIT_REQUIRE_SERVICES") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf("SKIPPED, SERVICE MISSING: "+format, args...)
}

// ssehubBinary builds this command into the test's temporary directory.
func ssehubBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs ssehub processes")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool to build ssehub: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "ssehub")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// hubProc is one ssehub process on a loopback port.
type hubProc struct {
	t    *testing.T
	name string
	url  string
	cmd  *exec.Cmd
	logs *procLog
	done chan struct{}
}

// procLog is a process's output, written by exec's copying goroutine and
// read by the test.
type procLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *procLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *procLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startHub runs ssehub against redisURL and waits until /healthz answers
// 200. The process is killed at cleanup, and its log shown if the test
// failed.
func startHub(t *testing.T, bin, name, redisURL string, extra ...string) *hubProc {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	args := append([]string{"--addr", addr, "--redis-url", redisURL,
		"--jwt-secret", clusterSecret, "--publish-key", clusterKey, "--log-level", "warn"}, extra...)
	p := &hubProc{t: t, name: name, url: "http://" + addr, cmd: exec.Command(bin, args...), logs: new(procLog), done: make(chan struct{})}
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no SSEHUB_* from the environment
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.logs)
		}
	})
	deadline := time.Now().Add(clusterPatience)
	for {
		resp, err := http.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited at start-up:\n%s", name, p.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not healthy after %v (last: %v):\n%s", name, clusterPatience, err, p.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL, as a crash or the OOM killer would:
// no shutdown, no goodbye to Redis.
func (p *hubProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// publish posts one event to users, or to everyone when users is nil,
// and returns the status and the id.
func (p *hubProc) publish(t *testing.T, users []string, typ string, seq int) (int, string) {
	t.Helper()
	msg := map[string]any{"users": users, "type": typ, "data": map[string]int{"seq": seq}}
	if users == nil {
		msg = map[string]any{"all": true, "type": typ, "data": map[string]int{"seq": seq}}
	}
	body, _ := json.Marshal(msg)
	req, _ := http.NewRequest(http.MethodPost, p.url+"/sse/publish", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+clusterKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("publish to %s: %v", p.name, err)
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.ID
}

// mustPublish publishes and fails the test unless it was accepted.
func (p *hubProc) mustPublish(t *testing.T, users []string, seq int) string {
	t.Helper()
	status, id := p.publish(t, users, "t", seq)
	if status != http.StatusOK || id == "" {
		t.Fatalf("publish %d to %s: status %d id %q", seq, p.name, status, id)
	}
	return id
}

// getJSON reads a JSON endpoint.
func (p *hubProc) getJSON(t *testing.T, path string, v any) int {
	t.Helper()
	resp, err := http.Get(p.url + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", p.name, path, err)
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(v)
	return resp.StatusCode
}

// sub is a subscriber's stream, decoded on its own goroutine.
type sub struct {
	t      *testing.T
	events chan sseclient.Event
	done   chan struct{}
	cancel context.CancelFunc
}

// subscribe opens a stream on p for user, after lastID when set.
func (p *hubProc) subscribe(t *testing.T, user, lastID string) *sub {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: user, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)),
	}).SignedString([]byte(clusterSecret))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/sse/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("subscribe on %s: %v", p.name, err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		resp.Body.Close()
		t.Fatalf("subscribe on %s: status %d", p.name, resp.StatusCode)
	}
	s := &sub{t: t, events: make(chan sseclient.Event, 1024), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(s.done)
		defer close(s.events)
		defer resp.Body.Close()
		dec := sseclient.NewDecoder(resp.Body)
		for {
			ev, err := dec.Next()
			if err != nil {
				return
			}
			s.events <- ev
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

// next returns the next event that is not a heartbeat; heartbeats, if
// want, are returned too.
func (s *sub) next(heartbeats bool) sseclient.Event {
	s.t.Helper()
	timer := time.NewTimer(clusterPatience)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.t.Fatal("stream ended, want an event")
			}
			if ev.Type == "heartbeat" && !heartbeats {
				continue
			}
			return ev
		case <-timer.C:
			s.t.Fatalf("no event within %v", clusterPatience)
		}
	}
}

// opening reads the connected event and reports whether it resumed.
func (s *sub) opening() bool {
	s.t.Helper()
	ev := s.next(false)
	if ev.Type != "connected" {
		s.t.Fatalf("first event %s, want connected", ev.Type)
	}
	var d struct{ Resumed bool }
	_ = json.Unmarshal(ev.Data, &d)
	return d.Resumed
}

// expect reads events and fails unless they are the given ids, in order.
func (s *sub) expect(who string, ids []string) {
	s.t.Helper()
	for i, id := range ids {
		if ev := s.next(false); ev.ID != id {
			s.t.Fatalf("%s: event %d is %s %s (%s), want %s", who, i, ev.Type, ev.ID, ev.Data, id)
		}
	}
}

// ended waits until the stream is closed.
func (s *sub) ended() {
	s.t.Helper()
	timer := time.NewTimer(clusterPatience)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return
			}
		case <-timer.C:
			s.t.Fatal("stream still open")
		}
	}
}

// TestClusterProcesses runs three ssehub processes against one Redis. A
// client of node 1, which is then killed with SIGKILL, reconnects to node 2
// with its Last-Event-ID and receives every event addressed to it that was
// published on nodes 2 and 3 meanwhile, once, in order, then live events;
// the cluster status of a surviving node lists the live nodes only, once
// the dead one's report has expired.
func TestClusterProcesses(t *testing.T) {
	bin := ssehubBinary(t)
	rdb := redis.NewClient(&redis.Options{Addr: clusterRedisAddr()})
	// Closed after the key cleanup below, which runs after the processes
	// are killed (cleanups run last-in first-out).
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		needService(t, "Redis at %s (SSEKIT_REDIS_ADDR) does not answer: %v", clusterRedisAddr(), err)
	}
	prefix := "ssekit-test-" + uuid.NewString()[:8]
	t.Cleanup(func() {
		keys, err := rdb.Keys(context.Background(), "{"+prefix+"}:*").Result()
		if err == nil && len(keys) > 0 {
			err = rdb.Del(context.Background(), keys...).Err()
		}
		if err != nil {
			t.Errorf("delete the test's keys under %s: %v", prefix, err)
		}
	})
	url := func(node string) string {
		return fmt.Sprintf("redis://%s/0?prefix=%s&node=%s&presence_interval=200ms&presence_ttl=2s", clusterRedisAddr(), prefix, node)
	}
	n1 := startHub(t, bin, "node-1", url("node-1"))
	n2 := startHub(t, bin, "node-2", url("node-2"))
	n3 := startHub(t, bin, "node-3", url("node-3"))

	alice, bob := uuid.NewString(), uuid.NewString()
	onN1 := n1.subscribe(t, alice, "")
	onN1.opening()
	bobOnN3 := n3.subscribe(t, bob, "")
	bobOnN3.opening()
	first := []string{n2.mustPublish(t, []string{alice}, 1), n3.mustPublish(t, nil, 2)}
	onN1.expect("alice on node 1", first)
	bobOnN3.expect("bob on node 3", first[1:])

	n1.kill()
	onN1.ended()
	var missed, bobs []string
	for k := range 9 {
		n := []*hubProc{n2, n3}[k%2]
		switch k % 3 {
		case 0:
			missed = append(missed, n.mustPublish(t, []string{alice}, 10+k))
		case 1:
			bobs = append(bobs, n.mustPublish(t, []string{bob}, 10+k))
		case 2: // everyone
			id := n.mustPublish(t, nil, 10+k)
			missed, bobs = append(missed, id), append(bobs, id)
		}
	}
	onN2 := n2.subscribe(t, alice, first[1])
	if !onN2.opening() {
		t.Fatal("alice's stream on node 2 did not resume")
	}
	onN2.expect("alice resumed on node 2", missed)
	bobOnN3.expect("bob on node 3", bobs)
	live := []string{n3.mustPublish(t, []string{alice}, 100), n2.mustPublish(t, nil, 101)}
	onN2.expect("alice live on node 2", live)
	// Nothing twice: the next event is a marker published last.
	marker := n3.mustPublish(t, []string{alice}, 102)
	onN2.expect("alice after the marker", []string{marker})

	var st struct {
		Scope        string `json:"scope"`
		TotalClients int    `json:"total_clients"`
		Nodes        []struct {
			Node string `json:"node"`
		} `json:"nodes"`
	}
	deadline := time.Now().Add(clusterPatience)
	for {
		if code := n2.getJSON(t, "/sse/status?scope=cluster", &st); code != http.StatusOK {
			t.Fatalf("cluster status: %d", code)
		}
		var names []string
		for _, n := range st.Nodes {
			names = append(names, n.Node)
		}
		// node-1 died without a goodbye: it drops out when its report
		// expires, by itself.
		slices.Sort(names)
		if slices.Equal(names, []string{"node-2", "node-3"}) && st.TotalClients == 2 && st.Scope == "cluster" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster status %+v, want node-2 and node-3 with 2 clients", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClusterRedisDown runs ssehub on a private redis-server, which is then
// killed: publishing answers 503 and /healthz reports Redis unhealthy while
// the open stream stays connected (heartbeats); once Redis is back, the
// node publishes and delivers again without a restart.
func TestClusterRedisDown(t *testing.T) {
	bin := ssehubBinary(t)
	if _, err := exec.LookPath("redis-server"); err != nil {
		needService(t, "no redis-server binary in PATH: %v", err)
	}
	port := freePort(t)
	dir := t.TempDir()
	var srv *exec.Cmd
	var srvDone chan struct{}
	startRedis := func() {
		srv = exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir, "--loglevel", "warning")
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		srvDone = make(chan struct{})
		go func(cmd *exec.Cmd, done chan struct{}) {
			_ = cmd.Wait()
			close(done)
		}(srv, srvDone)
		probe := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1})
		defer probe.Close()
		deadline := time.Now().Add(clusterPatience)
		for probe.Ping(t.Context()).Err() != nil {
			if time.Now().After(deadline) {
				t.Fatal("redis-server does not answer")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	stopRedis := func() {
		_ = srv.Process.Kill()
		<-srvDone
	}
	startRedis()
	t.Cleanup(stopRedis)

	n := startHub(t, bin, "node", fmt.Sprintf("redis://127.0.0.1:%d/0", port), "--heartbeat", "100ms")
	user := uuid.NewString()
	s := n.subscribe(t, user, "")
	s.opening()
	s.expect("before", []string{n.mustPublish(t, []string{user}, 1)})

	stopRedis()
	if status, _ := n.publish(t, []string{user}, "t", 2); status != http.StatusServiceUnavailable {
		t.Fatalf("publish with Redis down: status %d, want 503", status)
	}
	var h struct {
		Status  string `json:"status"`
		Failing string `json:"failing"`
	}
	if code := n.getJSON(t, "/healthz", &h); code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz with Redis down: %d %+v, want 503", code, h)
	}
	for range 3 {
		if ev := s.next(true); ev.Type != "heartbeat" {
			t.Fatalf("while Redis is down: got %s %s, want heartbeats", ev.Type, ev.ID)
		}
	}

	startRedis()
	deadline := time.Now().Add(clusterPatience)
	for n.getJSON(t, "/healthz", &h) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("/healthz still failing after Redis came back: %+v", h)
		}
		time.Sleep(50 * time.Millisecond)
	}
	after := n.mustPublish(t, []string{user}, 3)
	// Redis came back empty: the stream says so, then carries on.
	if ev := s.next(false); ev.Type != "resync" {
		t.Fatalf("first event after Redis came back empty: %s %s, want resync", ev.Type, ev.ID)
	}
	s.expect("after", []string{after})
	if strings.Contains(n.logs.String(), "panic") {
		t.Fatalf("ssehub panicked:\n%s", n.logs)
	}
}

// TestParseClusterURL: ssehub's own query parameters set the broker's
// options and are taken off the URL before go-redis parses the rest;
// bad values are errors that do not echo the URL.
func TestParseClusterURL(t *testing.T) {
	ropts, bopts, err := parseClusterURL("redis://:s3cret@127.0.0.1:6390/2?prefix=p&node=n&presence_interval=1s&presence_ttl=4s&dial_timeout=2s")
	if err != nil {
		t.Fatal(err)
	}
	if ropts.Addr != "127.0.0.1:6390" || ropts.DB != 2 || ropts.Password != "s3cret" || ropts.DialTimeout != 2*time.Second {
		t.Errorf("redis options %+v", ropts)
	}
	if bopts.Prefix != "p" || bopts.Node != "n" ||
		bopts.PresenceInterval != time.Second || bopts.PresenceTTL != 4*time.Second {
		t.Errorf("broker options %+v", bopts)
	}
	for _, bad := range []string{
		"redis://:s3cret@127.0.0.1/0?presence_interval=soon",
		"redis://:s3cret@127.0.0.1/0?presence_ttl=0s",
		"redis://:s3cret@127.0.0.1/0?no_such_option=1",
	} {
		_, _, err := parseClusterURL(bad)
		if err == nil {
			t.Errorf("%s: no error", bad)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error leaks the password: %v", bad, err)
		}
	}
}
