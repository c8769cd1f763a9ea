package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/ssekit/sse/internal/rediscluster"
	"github.com/ssekit/sse/internal/ssetest"
)

// Secrets of the cluster tests' processes.
const (
	clusterSecret = "cluster-test-secret-0123456789abcdef"
	clusterKey    = "cluster-test-publish-key"
)

// TestClusterProcesses runs three ssehub processes against one Redis. A
// client of node 1, which is then killed with SIGKILL, reconnects to node 2
// with its Last-Event-ID and receives every event addressed to it that was
// published on nodes 2 and 3 meanwhile, once, in order, then live events;
// the cluster status of a surviving node lists the live nodes only, once
// the dead one's report has expired.
func TestClusterProcesses(t *testing.T) {
	bin := ssehubBinary(t)
	_, prefix := sharedRedis(t)
	url := func(node string) string {
		return fmt.Sprintf("redis://%s/0?prefix=%s&node=%s&presence_interval=200ms&presence_ttl=2s", ssetest.RedisAddr(), prefix, node)
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

// TestClusterRedisDown runs ssehub on a private redis-server, which is then
// killed: publishing answers 503 and /healthz reports Redis unhealthy while
// the open stream stays connected (heartbeats); once Redis is back, the
// node publishes and delivers again without a restart.
func TestClusterRedisDown(t *testing.T) {
	bin := ssehubBinary(t)
	if _, err := exec.LookPath("redis-server"); err != nil {
		ssetest.ServiceMissing(t, "no redis-server binary in PATH: %v", err)
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
		ssetest.Eventually(t, "redis-server to answer", func() bool { return probe.Ping(t.Context()).Err() == nil })
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
	ssetest.EventuallyNil(t, "/healthz after Redis came back", func() error {
		if code := n.getJSON(t, "/healthz", &h); code != http.StatusOK {
			return fmt.Errorf("still failing: %+v", h)
		}
		return nil
	})
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
			ssetest.ServiceMissing(t, "no %s binary in PATH for a Redis Cluster: %v", tool, err)
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
	rdb, prefix := sharedRedis(t)
	info, err := rdb.Info(t.Context(), "replication").Result()
	if err != nil {
		ssetest.RedisDown(t, err)
	}
	replicas := 0
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			replicas, _ = strconv.Atoi(v)
		}
	}
	cfg := testConfig(t, "--redis-url", fmt.Sprintf("redis://%s/0?prefix=%s", ssetest.RedisAddr(), prefix),
		"--redis-wait-replicas", strconv.Itoa(replicas+1))
	cl, err := openCluster(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ta := newTestApp(t, cfg, cl)
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
