package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ssekit/sse/ssekit"
)

func TestMain(m *testing.M) {
	// The multi-process test re-runs this test binary as its workers.
	if os.Getenv(workerEnv) != "" {
		if err := workerMain(context.Background(), os.Stdin, os.Stdout); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// newHubServer starts an in-process hub with the common benchmark
// interface: GET /stream?user=, POST /publish (broadcast) and POST
// /publish?user= (to one user).
func newHubServer(t *testing.T) string {
	t.Helper()
	// A buffer larger than the whole run: overflow (which ends a stream by
	// design) cannot happen however slowly a loaded CI machine reads.
	hub, err := ssekit.New(ssekit.Config{MaxClients: -1, MaxClientsPerUser: -1, HeartbeatInterval: -1, BufferSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /stream", hub.Handler(ssekit.HandlerOptions{
		Authenticate: func(r *http.Request) (string, error) { return r.URL.Query().Get("user"), nil },
	}))
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		to := ssekit.Target{All: true}
		if u := r.URL.Query().Get("user"); u != "" {
			to = ssekit.Target{Users: []string{u}}
		}
		if err == nil {
			_, err = hub.Publish(r.Context(), to, ssekit.Event{Type: "bench", Data: json.RawMessage(body)})
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(mux)
	// Cleanups run last-in first-out: the hub ends its streams before the
	// server waits for them.
	t.Cleanup(srv.Close)
	t.Cleanup(func() { hub.Close() })
	return srv.URL
}

// TestSmoke proves the generator end to end on a small scale: every event
// reaches every connection once and in order. Counts only: no timings.
func TestSmoke(t *testing.T) {
	for _, perProc := range []int{1000, 100} { // in process; then 2 worker processes
		t.Run("per-proc="+strconv.Itoa(perProc), func(t *testing.T) {
			base := newHubServer(t)
			const conns, events = 200, 50
			cfg, err := parseFlags([]string{
				"-url", base + "/stream?user={user}", "-conns", strconv.Itoa(conns), "-users", "50",
				"-per-proc", strconv.Itoa(perProc), "-idle-wait", "0",
				"-publish-url", base + "/publish", "-count", strconv.Itoa(events), "-rate", "1000", "-concurrency", "2",
				"-drain", "10s", "-max-duration", "1m",
			}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			res, err := bench(ctx, cfg, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			d := res.Delivery
			if got, want := res.Connect.Established, conns; got != want {
				t.Fatalf("established %d, want %d (errors %v)", got, want, res.Connect.Errors)
			}
			if got, want := res.Publish.Accepted, int64(events); got != want {
				t.Fatalf("accepted %d, want %d (errors %v)", got, want, res.Publish.Errors)
			}
			if got, want := d.Unique, int64(conns*events); got != want {
				t.Errorf("unique deliveries %d, want %d", got, want)
			}
			if d.Lost != 0 || d.Dups != 0 || d.Reorders != 0 || res.Connect.Ended != 0 {
				t.Errorf("lost %d, dups %d, reordered %d, ended %d; want all 0 (errors %v)", d.Lost, d.Dups, d.Reorders, res.Connect.Ended, res.Connect.Errors)
			}
			if got, want := d.Other, int64(conns); got != want { // one connected event each
				t.Errorf("other events %d, want %d", got, want)
			}
		})
	}
}

// TestSmokeTargeted runs a targeted run end to end: each event to one
// random user of four connections each, in process and over two worker
// processes; every connection of the addressee gets it, and no other.
func TestSmokeTargeted(t *testing.T) {
	for _, perProc := range []int{1000, 100} {
		t.Run("per-proc="+strconv.Itoa(perProc), func(t *testing.T) {
			base := newHubServer(t)
			const conns, users, events = 200, 50, 400
			cfg, err := parseFlags([]string{
				"-url", base + "/stream?user={user}", "-conns", strconv.Itoa(conns), "-users", strconv.Itoa(users),
				"-per-proc", strconv.Itoa(perProc), "-idle-wait", "0", "-targeted",
				"-publish-url", base + "/publish?user={user}", "-count", strconv.Itoa(events), "-rate", "2000", "-concurrency", "4",
				"-drain", "10s", "-max-duration", "1m",
			}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			res, err := bench(ctx, cfg, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			d := res.Delivery
			if got, want := res.Publish.Accepted, int64(events); got != want {
				t.Fatalf("accepted %d, want %d (errors %v)", got, want, res.Publish.Errors)
			}
			// Every user has conns/users connections: each event is
			// expected that many times.
			if got, want := d.Expected, int64(events*conns/users); got != want {
				t.Errorf("expected deliveries %d, want %d", got, want)
			}
			if d.Unique != d.Expected || d.Lost != 0 || d.Dups != 0 || d.Misdelivered != 0 || d.Reorders != 0 {
				t.Errorf("unique %d of %d, lost %d, dups %d, misdelivered %d, reordered %d; want all delivered once, in order",
					d.Unique, d.Expected, d.Lost, d.Dups, d.Misdelivered, d.Reorders)
			}
			if got, want := res.Params.Mode, "targeted"; got != want {
				t.Errorf("mode %q, want %q", got, want)
			}
		})
	}
}
