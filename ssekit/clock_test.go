package ssekit_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssekit/sse/ssekit"
)

// recorder is a ResponseWriter for streams served inside a synctest
// bubble, where time is fake and a real socket would not be.
type recorder struct {
	mu     sync.Mutex
	header http.Header
	b      strings.Builder
	writes int
}

func newRecorder() *recorder { return &recorder{header: make(http.Header)} }

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(int)     {}
func (r *recorder) Flush()              {}
func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes++
	return r.b.Write(p)
}

// Writes returns how many writes the stream made.
func (r *recorder) Writes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writes
}
func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.b.String()
}

// serve runs hub.ServeStream on its own goroutine; the returned channel
// closes when the stream ends.
func serve(hub *ssekit.Hub, w http.ResponseWriter, ctx context.Context, user string) <-chan struct{} {
	done := make(chan struct{})
	req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx)
	go func() {
		defer close(done)
		hub.ServeStream(w, req, user)
	}()
	return done
}

func TestHeartbeatOnlyOnSilentStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := ssekit.NewHub(ssekit.Config{HeartbeatInterval: 30 * time.Second, MaxStreamAge: -1})
		ctx, cancel := context.WithCancel(context.Background())
		rec := newRecorder()
		done := serve(hub, rec, ctx, "u")
		synctest.Wait()

		// Traffic every 10 s for two minutes: no heartbeat is needed.
		for range 12 {
			time.Sleep(10 * time.Second)
			hub.SendToAll(ssekit.Event{Type: "tick"})
			synctest.Wait()
		}
		if n := strings.Count(rec.String(), "event: heartbeat"); n != 0 {
			t.Fatalf("%d heartbeats on a busy stream", n)
		}
		// Silent for 30 s: one heartbeat; 30 s more: another.
		time.Sleep(30 * time.Second)
		synctest.Wait()
		out := rec.String()
		if n := strings.Count(out, "event: heartbeat"); n != 1 {
			t.Fatalf("%d heartbeats after 30 s of silence, want 1", n)
		}
		// A heartbeat never carries an id, so it never moves Last-Event-ID.
		i := strings.Index(out, "event: heartbeat")
		frame := out[i:]
		frame = frame[:strings.Index(frame, "\n\n")]
		if !strings.HasSuffix(out[:i], "\n\n") || strings.Contains(frame, "id:") {
			t.Fatalf("heartbeat frame has an id: %q", out[max(0, i-40):])
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if n := strings.Count(rec.String(), "event: heartbeat"); n != 2 {
			t.Fatalf("%d heartbeats after 60 s of silence, want 2", n)
		}
		cancel()
		<-done
		hub.Close()
	})
}

func TestHeartbeatDisabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := ssekit.NewHub(ssekit.Config{HeartbeatInterval: -1, MaxStreamAge: -1})
		ctx, cancel := context.WithCancel(context.Background())
		rec := newRecorder()
		done := serve(hub, rec, ctx, "u")
		time.Sleep(time.Hour)
		synctest.Wait()
		if strings.Contains(rec.String(), "heartbeat") {
			t.Fatal("heartbeat with HeartbeatInterval < 0")
		}
		cancel()
		<-done
		hub.Close()
	})
}

func TestStreamsRotateBetween80And100PercentOfMaxAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := ssekit.NewHub(ssekit.Config{MaxStreamAge: 10 * time.Minute, HeartbeatInterval: -1, RetryInterval: time.Second})
		const n = 20
		dones := make([]<-chan struct{}, n)
		recs := make([]*recorder, n)
		for i := range dones {
			recs[i] = newRecorder()
			dones[i] = serve(hub, recs[i], context.Background(), fmt.Sprint("u", i))
		}
		time.Sleep(8*time.Minute - time.Second)
		synctest.Wait()
		if got := hub.GetTotalClientCount(); got != n {
			t.Fatalf("%d streams before 80%% of MaxStreamAge, want %d", got, n)
		}
		time.Sleep(2*time.Minute + 2*time.Second)
		synctest.Wait()
		for i, d := range dones {
			select {
			case <-d:
			default:
				t.Fatalf("stream %d still open after MaxStreamAge", i)
			}
			// It ends with a retry hint, for a jittered reconnect.
			if out := recs[i].String(); !strings.HasSuffix(out, "\n\n") || !strings.Contains(out[strings.LastIndex(out[:len(out)-2], "\n\n"):], "retry: ") {
				t.Fatalf("rotated stream ends %q, want a retry line", out[max(0, len(out)-60):])
			}
		}
		if got := hub.Stats().Disconnects[ssekit.ReasonRotated]; got != n {
			t.Fatalf("rotated = %d, want %d", got, n)
		}
		hub.Close()
	})
}

func TestHistoryAgeExpiresEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := ssekit.NewHub(ssekit.Config{HistoryAge: time.Minute, HeartbeatInterval: -1, MaxStreamAge: -1})
		defer hub.Close()
		broker := hub.Broker() // the hub's own, sized by Config
		first, _ := hub.Publish(t.Context(), ssekit.Target{All: true}, ssekit.Event{Type: "n", Data: 1})
		hub.Publish(t.Context(), ssekit.Target{All: true}, ssekit.Event{Type: "n", Data: 2})
		if _, err := broker.Read(t.Context(), ssekit.BroadcastChannel, first, 10); err != nil {
			t.Fatalf("read within HistoryAge: %v", err)
		}
		time.Sleep(time.Minute + time.Second)
		_, err := broker.Read(t.Context(), ssekit.BroadcastChannel, first, 10)
		if !errors.Is(err, ssekit.ErrUnknownID) {
			t.Fatalf("replay of an expired id: %v, want ErrUnknownID", err)
		}

		// A stream resuming from there is told to resync.
		ctx, cancel := context.WithCancel(context.Background())
		rec := newRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx)
		req.Header.Set("Last-Event-ID", "a"+first) // the broadcast channel's position
		done := make(chan struct{})
		go func() {
			defer close(done)
			hub.ServeStream(rec, req, "u")
		}()
		synctest.Wait()
		if !strings.Contains(rec.String(), "event: resync") {
			t.Fatalf("stream %q, want a resync event", rec.String())
		}
		cancel()
		<-done
	})
}

func TestShutdownSpreadsClosesOverHalfItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := ssekit.NewHub(ssekit.Config{HeartbeatInterval: -1, MaxStreamAge: -1})
		const n = 10
		dones := make([]<-chan struct{}, n)
		for i := range dones {
			dones[i] = serve(hub, newRecorder(), context.Background(), fmt.Sprint("u", i))
		}
		synctest.Wait()
		closed := func() int {
			k := 0
			for _, d := range dones {
				select {
				case <-d:
					k++
				default:
				}
			}
			return k
		}
		// 10 s to drain: the closes are spread over the first 5 s.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut := make(chan error, 1)
		go func() { shut <- hub.Shutdown(ctx) }()
		time.Sleep(time.Second)
		synctest.Wait()
		if k := closed(); k == 0 || k == n {
			t.Fatalf("%d of %d streams closed 1 s into a 10 s shutdown, want some but not all", k, n)
		}
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if k := closed(); k != n {
			t.Fatalf("%d of %d streams closed after half the drain time", k, n)
		}
		if err := <-shut; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	})
}
