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
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/sseclient"
)

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
	deadline := time.Now().Add(ssetest.Patience)
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
			t.Fatalf("%s is not healthy after %v (last: %v):\n%s", name, ssetest.Patience, err, p.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sharedRedis returns a client of the shared Redis (the test skips, or
// fails under SSEKIT_REQUIRE_SERVICES=1, when it does not answer) and a
// broker prefix of the test's own, whose every key is deleted at cleanup.
func sharedRedis(t *testing.T) (*redis.Client, string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: ssetest.RedisAddr()})
	// Closed after the key cleanup, which runs after the test's processes
	// are killed (cleanups run last-in first-out).
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		ssetest.RedisDown(t, err)
	}
	prefix := "ssekit-test-" + uuid.NewString()[:8]
	t.Cleanup(func() {
		if err := redisbroker.Purge(context.Background(), rdb, prefix); err != nil {
			t.Errorf("delete the test's keys: %v", err)
		}
	})
	return rdb, prefix
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
	timer := time.NewTimer(ssetest.Patience)
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
			s.t.Fatalf("no event within %v", ssetest.Patience)
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
	timer := time.NewTimer(ssetest.Patience)
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
	ssetest.EventuallyNil(t, "cluster status", func() error {
		if code := p.getJSON(t, "/sse/status?scope=cluster", &st); code != http.StatusOK {
			t.Fatalf("cluster status: %d", code)
		}
		var names []string
		for _, n := range st.Nodes {
			names = append(names, n.Node)
		}
		slices.Sort(names)
		if slices.Equal(names, nodes) && st.TotalClients == clients && st.Scope == "cluster" {
			return nil
		}
		return fmt.Errorf("%+v, want %v with %d clients", st, nodes, clients)
	})
}
