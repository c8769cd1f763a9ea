package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
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

	"github.com/ssekit/sse/internal/rediscluster"
	"github.com/ssekit/sse/internal/ssetest"
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

// startHub runs ssehub against the Redis at redisURL and waits until
// /healthz answers 200. The process is killed at cleanup, and its log
// shown if the test failed.
func startHub(t *testing.T, bin, name, redisURL string, extra ...string) *hubProc {
	t.Helper()
	return startHubWith(t, bin, name, append([]string{"--redis-url", redisURL}, extra...)...)
}

// startHubWith runs ssehub with args, its address and secrets aside, and
// waits until /healthz answers 200, as startHub.
func startHubWith(t *testing.T, bin, name string, extra ...string) *hubProc {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	args := append([]string{"--addr", addr,
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

// deletePrefix deletes every key of the broker prefix from the shared
// Redis: its own ("{prefix}:…") and its channels' ("{prefix:channel}…").
func deletePrefix(t *testing.T, rdb *redis.Client, prefix string) {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), "{"+prefix+"[}:]*").Result()
	if err == nil && len(keys) > 0 {
		err = rdb.Del(context.Background(), keys...).Err()
	}
	if err != nil {
		t.Errorf("delete the test's keys under %s: %v", prefix, err)
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

// mustPublish publishes event seq and fails the test unless it was
// accepted. It returns seq, by which the tests know the event: with Redis
// the publish's id is not a position that clients see.
func (p *hubProc) mustPublish(t *testing.T, users []string, seq int) int {
	t.Helper()
	status, id := p.publish(t, users, "t", seq)
	if status != http.StatusOK || id == "" {
		t.Fatalf("publish %d to %s: status %d id %q", seq, p.name, status, id)
	}
	return seq
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
	// last is the id of the last event read that had one: the stream's
	// position, which a client resumes from. Only the test's goroutine
	// uses it.
	last string
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
	s := &sub{t: t, events: make(chan sseclient.Event, 1024), done: make(chan struct{}), cancel: cancel, last: lastID}
	go func() {
		defer close(s.done)
		defer close(s.events)
		defer resp.Body.Close()
		dec := sseclient.NewDecoder(resp.Body)
		dec.SetLastEventID(lastID) // as a browser that resumes does
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
// want, are returned too. An event that brings an id must move the
// stream's position forward, from the last one's (or the id it resumed
// from). The decoder gives an event without an id field the last id, as a
// browser does: such an event's ID is s.last.
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
			if ev.ID != s.last {
				s.checkMove(ev)
				s.last = ev.ID
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

// checkMove fails the test unless ev's id may follow s.last: a position
// of the hub, after it in every channel, except that a resync starts the
// channels it names over where their history starts again (Redis came
// back empty: the new positions may be lower), and keeps the others.
func (s *sub) checkMove(ev sseclient.Event) {
	s.t.Helper()
	next, _, ok := ssetest.Positions(ev.ID)
	switch {
	case !ok:
		s.t.Fatalf("%s event has id %q, not a position of the hub", ev.Type, ev.ID)
	case s.last == "":
	case ev.Type == "resync":
		var d struct{ Channels []string }
		prev, _, _ := ssetest.Positions(s.last)
		if err := json.Unmarshal(ev.Data, &d); err != nil || len(d.Channels) == 0 {
			s.t.Fatalf("resync %s names no channel", ev.Data)
		}
		for tag, p := range prev {
			kind := map[string]string{"a": "all", "u": "user"}[tag]
			if !slices.Contains(d.Channels, kind) && next[tag] != p {
				s.t.Fatalf("resync %s has id %q after %q: channel %s moved", ev.Data, ev.ID, s.last, tag)
			}
		}
	case !ssetest.Moved(s.last, ev.ID):
		s.t.Fatalf("%s event has id %q after %q: the position did not move forward", ev.Type, ev.ID, s.last)
	}
}

// want is what a stream must receive next: the seqs of the events of its
// user's channel and of the broadcast channel, each in publish order.
type want struct{ user, all []int }

// expect reads as many events as w names and fails unless they are those
// events, each once, with an id of its own that moves the stream forward
// (next checks it): the user's in the order of w.user, the broadcasts in
// the order of w.all. Only each channel's order is promised: channels are
// independent logs (on a Redis Cluster, on different masters, heard on
// different connections), so an event of one may overtake an earlier
// event of another.
func (s *sub) expect(who string, w want) {
	s.t.Helper()
	channel := map[int]string{}
	for _, seq := range w.user {
		channel[seq] = "user"
	}
	for _, seq := range w.all {
		channel[seq] = "all"
	}
	var got want
	for i := range len(w.user) + len(w.all) {
		before := s.last
		ev := s.next(false)
		var d struct{ Seq *int }
		if ev.Type != "t" || ev.ID == before || json.Unmarshal(ev.Data, &d) != nil || d.Seq == nil {
			s.t.Fatalf("%s: event %d is %s %s (%s), want a published event with an id of its own", who, i, ev.Type, ev.ID, ev.Data)
		}
		switch channel[*d.Seq] {
		case "user":
			got.user = append(got.user, *d.Seq)
		case "all":
			got.all = append(got.all, *d.Seq)
		default:
			s.t.Fatalf("%s: event %d is %s (%s), not one of %+v", who, i, ev.ID, ev.Data, w)
		}
	}
	if !slices.Equal(got.user, w.user) || !slices.Equal(got.all, w.all) {
		s.t.Fatalf("%s: got %+v, want %+v (each channel in order, each event once)", who, got, w)
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
	t.Cleanup(func() { deletePrefix(t, rdb, prefix) })
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
	one := n2.mustPublish(t, []string{alice}, 1)
	two := n3.mustPublish(t, nil, 2)
	onN1.expect("alice on node 1", want{user: []int{one}, all: []int{two}})
	bobOnN3.expect("bob on node 3", want{all: []int{two}})

	n1.kill()
	onN1.ended()
	var missed, bobs want
	for k := range 9 {
		n := []*hubProc{n2, n3}[k%2]
		switch k % 3 {
		case 0:
			missed.user = append(missed.user, n.mustPublish(t, []string{alice}, 10+k))
		case 1:
			bobs.user = append(bobs.user, n.mustPublish(t, []string{bob}, 10+k))
		case 2: // everyone
			seq := n.mustPublish(t, nil, 10+k)
			missed.all, bobs.all = append(missed.all, seq), append(bobs.all, seq)
		}
	}
	// Alice resumes from the id of the last event she received.
	onN2 := n2.subscribe(t, alice, onN1.last)
	if !onN2.opening() {
		t.Fatal("alice's stream on node 2 did not resume")
	}
	onN2.expect("alice resumed on node 2", missed)
	bobOnN3.expect("bob on node 3", bobs)
	live := want{user: []int{n3.mustPublish(t, []string{alice}, 100)}, all: []int{n2.mustPublish(t, nil, 101)}}
	onN2.expect("alice live on node 2", live)
	// Nothing twice: the next events are a marker in each channel,
	// published last.
	markers := want{user: []int{n3.mustPublish(t, []string{alice}, 102)}, all: []int{n2.mustPublish(t, nil, 103)}}
	onN2.expect("alice after the markers", markers)

	// node-1 died without a goodbye: it drops out when its report
	// expires, by itself.
	n2.waitClusterStatus(t, []string{"node-2", "node-3"}, 2)
}

// waitClusterStatus waits until p's cluster status lists exactly the
// nodes named, with clients connections over all of them.
func (p *hubProc) waitClusterStatus(t *testing.T, nodes []string, clients int) {
	t.Helper()
	var st struct {
		Scope        string `json:"scope"`
		TotalClients int    `json:"total_clients"`
		Nodes        []struct {
			Node string `json:"node"`
		} `json:"nodes"`
	}
	deadline := time.Now().Add(clusterPatience)
	for {
		if code := p.getJSON(t, "/sse/status?scope=cluster", &st); code != http.StatusOK {
			t.Fatalf("cluster status: %d", code)
		}
		var names []string
		for _, n := range st.Nodes {
			names = append(names, n.Node)
		}
		slices.Sort(names)
		if slices.Equal(names, nodes) && st.TotalClients == clients && st.Scope == "cluster" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster status %+v, want %v with %d clients", st, nodes, clients)
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
	s.expect("before", want{user: []int{n.mustPublish(t, []string{user}, 1)}})

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
	s.expect("after", want{user: []int{after}})
	if strings.Contains(n.logs.String(), "panic") {
		t.Fatalf("ssehub panicked:\n%s", n.logs)
	}
}

// TestClusterOnRedisCluster runs three ssehub processes with
// --redis-cluster on a Redis Cluster of three masters, over which the
// channels' streams spread. A user event published on one node reaches
// that user's stream on another, a broadcast reaches everyone, and a
// client whose node is killed with SIGKILL resumes on another node with
// its Last-Event-ID: every event it missed, once, each channel in order,
// then live events. The cluster status lists the live nodes.
func TestClusterOnRedisCluster(t *testing.T) {
	bin := ssehubBinary(t)
	for _, tool := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(tool); err != nil {
			needService(t, "no %s binary in PATH for a Redis Cluster: %v", tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rc, err := rediscluster.Start(ctx, rediscluster.Options{Dir: t.TempDir(), Masters: 3, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	// Stopped after the hubs, which are killed first (cleanups run
	// last-in first-out).
	t.Cleanup(func() { _ = rc.Stop() })
	seeds := strings.Join(rc.Addrs(), ",")
	start := func(name string) *hubProc {
		return startHubWith(t, bin, name, "--redis-cluster", seeds+"?prefix=ssehub-test&node="+name+"&presence_interval=200ms&presence_ttl=2s")
	}
	n1, n2, n3 := start("node-1"), start("node-2"), start("node-3")

	alice, bob, carol := uuid.NewString(), uuid.NewString(), uuid.NewString()
	aliceOnN1 := n1.subscribe(t, alice, "")
	aliceOnN1.opening()
	bobOnN2 := n2.subscribe(t, bob, "")
	bobOnN2.opening()
	carolOnN3 := n3.subscribe(t, carol, "")
	carolOnN3.opening()

	// A user's event, published on another node than the user's.
	aliceOnN1.expect("alice on node 1", want{user: []int{n2.mustPublish(t, []string{alice}, 1)}})
	bobOnN2.expect("bob on node 2", want{user: []int{n1.mustPublish(t, []string{bob}, 2)}})
	// A broadcast, to everyone on every node.
	all := want{all: []int{n3.mustPublish(t, nil, 3)}}
	for who, s := range map[string]*sub{"alice": aliceOnN1, "bob": bobOnN2, "carol": carolOnN3} {
		s.expect(who+" gets the broadcast", all)
	}

	n1.kill()
	aliceOnN1.ended()
	var missed, bobs, carols want
	for k := range 12 {
		n := []*hubProc{n2, n3}[k%2]
		switch k % 4 {
		case 0, 1:
			missed.user = append(missed.user, n.mustPublish(t, []string{alice}, 10+k))
		case 2:
			seq := n.mustPublish(t, []string{bob, carol}, 10+k)
			bobs.user, carols.user = append(bobs.user, seq), append(carols.user, seq)
		case 3:
			seq := n.mustPublish(t, nil, 10+k)
			missed.all, bobs.all, carols.all = append(missed.all, seq), append(bobs.all, seq), append(carols.all, seq)
		}
	}
	// Alice resumes on node 3 from the id of the last event she received.
	aliceOnN3 := n3.subscribe(t, alice, aliceOnN1.last)
	if !aliceOnN3.opening() {
		t.Fatal("alice's stream on node 3 did not resume")
	}
	aliceOnN3.expect("alice resumed on node 3", missed)
	bobOnN2.expect("bob on node 2", bobs)
	carolOnN3.expect("carol on node 3", carols)
	aliceOnN3.expect("alice live on node 3", want{user: []int{n2.mustPublish(t, []string{alice}, 100)}, all: []int{n2.mustPublish(t, nil, 101)}})
	// Nothing twice: the next events are a marker in each channel,
	// published last.
	aliceOnN3.expect("alice after the markers", want{user: []int{n3.mustPublish(t, []string{alice}, 102)}, all: []int{n3.mustPublish(t, nil, 103)}})
	// The nodes see each other through the cluster too.
	n2.waitClusterStatus(t, []string{"node-2", "node-3"}, 3)
}

// TestClusterWaitReplicas checks that --redis-wait-replicas reaches the
// broker: asking for one replica more than the shared Redis has, a
// publish answers 503 naming the replicas, since Redis could not confirm
// that a replica holds the event.
func TestClusterWaitReplicas(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: clusterRedisAddr()})
	t.Cleanup(func() { rdb.Close() })
	info, err := rdb.Info(t.Context(), "replication").Result()
	if err != nil {
		needService(t, "Redis at %s (SSEKIT_REDIS_ADDR) does not answer: %v", clusterRedisAddr(), err)
	}
	replicas := 0
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			replicas, _ = strconv.Atoi(v)
		}
	}
	prefix := "ssekit-test-" + uuid.NewString()[:8]
	cfg := testConfig(t, "--redis-url", fmt.Sprintf("redis://%s/0?prefix=%s", clusterRedisAddr(), prefix),
		"--redis-wait-replicas", strconv.Itoa(replicas+1))
	cl, err := openCluster(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ta := newTestApp(t, cfg, cl)
	t.Cleanup(func() { deletePrefix(t, rdb, prefix) })
	status, out := publish(t, ta.srv.URL, testKey, `{"all":true,"type":"x"}`)
	if msg, _ := out["message"].(string); status != http.StatusServiceUnavailable || !strings.Contains(msg, "replicas") {
		t.Errorf("publish waiting for %d replicas of a Redis with %d: %d %v, want 503 naming the replicas", replicas+1, replicas, status, out)
	}
}

// TestParseClusterSeeds: --redis-cluster's seeds, and ssehub's own
// parameters after a '?', as in --redis-url.
func TestParseClusterSeeds(t *testing.T) {
	seeds, bopts, err := parseClusterSeeds(" 10.0.0.1:7000,redis-2.internal:7001 ,[fd00::3]:7002?prefix=p&node=n&presence_interval=1s&presence_ttl=4s")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.1:7000", "redis-2.internal:7001", "[fd00::3]:7002"}; !slices.Equal(seeds, want) {
		t.Errorf("seeds %q, want %q", seeds, want)
	}
	if bopts.Prefix != "p" || bopts.Node != "n" ||
		bopts.PresenceInterval != time.Second || bopts.PresenceTTL != 4*time.Second {
		t.Errorf("broker options %+v", bopts)
	}
	for _, bad := range []string{"", "10.0.0.1", "10.0.0.1:7000,,10.0.0.2:7000", "10.0.0.1:0", "redis://10.0.0.1:7000",
		"10.0.0.1:7000?presence_ttl=0s", "10.0.0.1:7000?password=x", "10.0.0.1:7000?prefix=%zz"} {
		if _, _, err := parseClusterSeeds(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
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
