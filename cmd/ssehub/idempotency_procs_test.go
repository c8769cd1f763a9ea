//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/redisbroker"
	"github.com/ssekit/sse/ssekit"
)

// TestClusterIdempotencyKeyNodeKilled: a publisher that gets no answer
// retries with the same Idempotency-Key on another node, and the event is
// stored and delivered once, wherever the first node died. Node A is
// caught inside a publish, as a crash would catch it: writes on Redis are
// paused (CLIENT PAUSE WRITE), so that A's next command waits there, and
// once CLIENT LIST shows it waiting, A is stopped (SIGSTOP) and the
// writes let through, so that the command runs and A never hears of it;
// then A is killed (SIGKILL). A keyed publish takes two steps, the key's
// record (a SET) and the appends (a script per channel): A dies after the
// first, then after both, before answering. Node B's answer to the retry
// is the first publish's id, replayed; the channel's stream holds the
// event once, and a stream on B receives it once.
//
// The Redis is the test's own: pausing the shared one would stall every
// other test on it.
func TestClusterIdempotencyKeyNodeKilled(t *testing.T) {
	bin := ssehubBinary(t)
	addr := procsRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	prefix := "ssekit-test-" + uuid.NewString()[:8]
	// The test reads the channel's stream as any node would.
	reader, err := redisbroker.New(rdb, redisbroker.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	// Each node's Redis connections carry its name (client_name), by
	// which CLIENT LIST tells them apart. Presence writes once an hour,
	// so that no refresh waits in a pause; a long read timeout keeps a
	// slow machine from failing the command that waits.
	url := func(node string) string {
		return fmt.Sprintf("redis://%s/0?prefix=%s&node=%s&client_name=%s&presence_interval=1h&presence_ttl=2h&read_timeout=30s",
			addr, prefix, node, node)
	}
	b := startHub(t, bin, "node-b", url("node-b"))
	// Load the publish script into Redis before any pause: A's append is
	// then one EVALSHA, not a NOSCRIPT and an EVAL.
	b.mustPublish(t, []string{uuid.NewString()}, 0)

	for i, phase := range []struct {
		name   string
		cmds   []string // the commands of the step A dies after
		stored int      // events in the channel when A has died
	}{
		{"after the key's record", []string{"set"}, 0},
		{"after the append", []string{"evalsha", "eval"}, 1},
	} {
		t.Run(phase.name, func(t *testing.T) {
			name := fmt.Sprint("node-a", i)
			a := startHub(t, bin, name, url(name))
			user := uuid.NewString()
			onB := b.subscribe(t, user, "")
			onB.opening()
			seq := 10 + i
			key := "order-" + uuid.NewString()

			procsPause(t, rdb)
			type answer struct {
				status int
				err    error
			}
			answered := make(chan answer, 1)
			go func() {
				status, _, _, err := procsPublishKeyed(a.url, user, seq, key)
				answered <- answer{status, err}
			}()
			// A waits on the record's SET: stop it, and let the SET run.
			id := procsWaitBlocked(t, rdb, name, "set")
			procsSignal(t, a, syscall.SIGSTOP)
			procsUnpause(t, rdb, id)
			if phase.cmds[0] != "set" {
				// A goes on to the append, which waits in turn.
				procsPause(t, rdb)
				procsSignal(t, a, syscall.SIGCONT)
				id = procsWaitBlocked(t, rdb, name, phase.cmds...)
				procsSignal(t, a, syscall.SIGSTOP)
				procsUnpause(t, rdb, id)
			}
			a.kill()
			if got := <-answered; got.err == nil {
				t.Fatalf("the node that was killed answered the publish: %d", got.status)
			}
			if got := len(procsStored(t, reader, user)); got != phase.stored {
				t.Fatalf("A died with %d events in the channel, want %d: not in the window the test aims at", got, phase.stored)
			}

			// The publisher retries on B, twice: the first publish's id,
			// replayed, each time.
			var first string
			for try := range 2 {
				status, id, replayed, err := procsPublishKeyed(b.url, user, seq, key)
				if err != nil || status != http.StatusOK || id == "" || !replayed {
					t.Fatalf("retry %d on node B: %d id %q replayed %v, %v; want 200, an id, replayed", try+1, status, id, replayed, err)
				}
				if try > 0 && id != first {
					t.Fatalf("retry %d on node B answered id %q, the first retry %q", try+1, id, first)
				}
				first = id
			}
			if ids := procsStored(t, reader, user); len(ids) != 1 || ids[0] != first {
				t.Fatalf("the user's channel holds publishes %q, want one: %s", ids, first)
			}
			onB.expect("the stream on node B", want{user: []int{seq}})
			marker := b.mustPublish(t, []string{user}, 100+i)
			onB.expect("the stream on node B, after the marker", want{user: []int{marker}})
		})
	}
}

// procsStored returns the publish ids the user's channel holds.
func procsStored(t *testing.T, reader *redisbroker.Broker, user string) []string {
	t.Helper()
	ms, err := reader.Read(t.Context(), ssekit.UserChannel(user), "0-0", 100)
	if err != nil {
		t.Fatalf("read the channel of %s: %v", user, err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	return ids
}

// procsRedis starts a redis-server of the test's own on a loopback port,
// killed at cleanup, and returns its address. It skips the test (fails it
// under SSEKIT_REQUIRE_SERVICES=1) when there is no redis-server.
func procsRedis(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		ssetest.ServiceMissing(t, "no redis-server binary in PATH: %v", err)
	}
	port := freePort(t)
	srv := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", t.TempDir(), "--loglevel", "warning")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = srv.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		<-done
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	probe := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer probe.Close()
	ssetest.Eventually(t, "redis-server to answer", func() bool { return probe.Ping(t.Context()).Err() == nil })
	return addr
}

// procsPublishKeyed posts event seq to user with an Idempotency-Key, and
// returns the answer's status, id and "replayed".
func procsPublishKeyed(base, user string, seq int, key string) (status int, id string, replayed bool, err error) {
	body, _ := json.Marshal(map[string]any{"users": []string{user}, "type": "t", "data": map[string]int{"seq": seq}})
	req, _ := http.NewRequest(http.MethodPost, base+"/sse/publish", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+clusterKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", false, err
	}
	defer resp.Body.Close()
	var out struct {
		ID       string `json:"id"`
		Replayed bool   `json:"replayed"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.ID, out.Replayed, err
}

// procsPause pauses Redis's writes, for longer than any wait of the test;
// the test's cleanup lets them through, should it fail first.
func procsPause(t *testing.T, rdb *redis.Client) {
	t.Helper()
	if err := rdb.Do(t.Context(), "CLIENT", "PAUSE", (10 * time.Minute).Milliseconds(), "WRITE").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	t.Cleanup(func() { rdb.Do(context.Background(), "CLIENT", "UNPAUSE") })
}

// procsUnpause lets the paused writes through and waits until the client
// id has run its command.
func procsUnpause(t *testing.T, rdb *redis.Client, id string) {
	t.Helper()
	if err := rdb.Do(t.Context(), "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatalf("CLIENT UNPAUSE: %v", err)
	}
	ssetest.EventuallyNil(t, "client "+id+" unblocked by CLIENT UNPAUSE", func() error {
		list, err := rdb.Do(t.Context(), "CLIENT", "LIST", "ID", id).Text()
		if err != nil {
			t.Fatalf("CLIENT LIST ID %s: %v", id, err)
		}
		if f := procsField(list, "flags"); strings.Contains(f, "b") {
			return fmt.Errorf("still blocked: %s", list)
		}
		return nil
	})
}

// procsWaitBlocked waits until a connection named name waits in the pause
// with one of cmds, and returns its client id.
func procsWaitBlocked(t *testing.T, rdb *redis.Client, name string, cmds ...string) string {
	t.Helper()
	var id string
	ssetest.EventuallyNil(t, "a connection of "+name+" blocked in the pause", func() error {
		list, err := rdb.ClientList(t.Context()).Result()
		if err != nil {
			t.Fatalf("CLIENT LIST: %v", err)
		}
		for line := range strings.Lines(list) {
			if procsField(line, "name") != name || !strings.Contains(procsField(line, "flags"), "b") {
				continue
			}
			for _, cmd := range cmds {
				if procsField(line, "cmd") == cmd {
					id = procsField(line, "id")
					return nil
				}
			}
		}
		return fmt.Errorf("none waits with %v:\n%s", cmds, list)
	})
	return id
}

// procsField returns a field of a CLIENT LIST line.
func procsField(line, field string) string {
	for _, kv := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(kv, field+"="); ok {
			return v
		}
	}
	return ""
}

// procsSignal sends p a signal; for SIGSTOP, it returns once every thread
// of p is stopped, so that p runs nothing after it.
func procsSignal(t *testing.T, p *hubProc, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
	if sig != syscall.SIGSTOP {
		return
	}
	ssetest.Eventually(t, p.name+" stopped after SIGSTOP", func() bool { return procsStopped(t, p.cmd.Process.Pid) })
}

// procsStopped reports whether every thread of process pid is stopped
// (state T in /proc/<pid>/task/<tid>/stat).
func procsStopped(t *testing.T, pid int) bool {
	t.Helper()
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		t.Fatalf("threads of process %d: %v", pid, err)
	}
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			return false // a thread that ended meanwhile: look again
		}
		// "tid (comm) state …": comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}
