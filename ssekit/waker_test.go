package ssekit_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssekit/sse/ssekit"
)

// bubbleStream serves one stream of user u on a new hub, inside a synctest
// bubble, and waits for its opening; stop hangs up and closes the hub.
func bubbleStream(cfg ssekit.Config) (hub *ssekit.Hub, rec *recorder, stop func()) {
	hub = ssekit.NewHub(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	rec = newRecorder()
	done := serve(hub, rec, ctx, "u")
	synctest.Wait()
	return hub, rec, func() {
		cancel()
		<-done
		hub.Close()
	}
}

// TestWriteDelayGathersBusyStreamsWrites shows WriteDelay at work: the
// first event after a quiet spell is written at once; events that follow
// it within WriteDelay wait for the next round and go out in one write; with
// WriteDelay negative, each is written as it comes.
func TestWriteDelayGathersBusyStreamsWrites(t *testing.T) {
	for _, tc := range []struct {
		name       string
		delay      time.Duration
		heldWrites int // writes of the three follow-ups before the round
	}{
		{"rounds", 50 * time.Millisecond, 0},
		{"disabled", -1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hub, rec, stop := bubbleStream(ssekit.Config{WriteDelay: tc.delay, BufferSize: 64})
				defer stop()
				opened := rec.Writes()

				hub.SendToAll(ssekit.Event{Type: "first"})
				synctest.Wait()
				if got := rec.Writes() - opened; got != 1 {
					t.Fatalf("%d writes after the first event, want 1 at once", got)
				}
				for _, typ := range []string{"a", "b", "c"} {
					hub.SendToAll(ssekit.Event{Type: typ})
					synctest.Wait()
				}
				if got := rec.Writes() - opened - 1; got != tc.heldWrites {
					t.Fatalf("%d writes of the follow-ups before WriteDelay passed, want %d", got, tc.heldWrites)
				}
				time.Sleep(50 * time.Millisecond)
				synctest.Wait()
				if got, want := rec.Writes()-opened-1, max(tc.heldWrites, 1); got != want {
					t.Fatalf("%d writes of the follow-ups after WriteDelay, want %d", got, want)
				}
				out := rec.String()
				if a, b, c := strings.Index(out, "event: a\n"), strings.Index(out, "event: b\n"), strings.Index(out, "event: c\n"); a < 0 || !(a < b && b < c) {
					t.Fatalf("follow-ups missing or out of order:\n%s", out)
				}
			})
		})
	}
}

// TestHalfFullQueueIsWrittenWithoutWaiting shows that WriteDelay never turns
// into an overflow: a stream whose queue is half full is woken at once,
// whatever the round.
func TestHalfFullQueueIsWrittenWithoutWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, rec, stop := bubbleStream(ssekit.Config{WriteDelay: time.Hour, BufferSize: 4})
		defer stop()
		hub.SendToAll(ssekit.Event{Type: "first"}) // the round after the quiet spell
		synctest.Wait()
		opened := rec.Writes()
		for range 3 { // two wait for the round; the third fills half the queue
			hub.SendToAll(ssekit.Event{Type: "next"})
		}
		synctest.Wait()
		if got := rec.Writes() - opened; got != 1 {
			t.Fatalf("%d writes once the queue was half full, want 1 at once", got)
		}
		if n := strings.Count(rec.String(), "event: next\n"); n != 3 {
			t.Fatalf("%d of 3 events written", n)
		}
		if st := hub.Stats(); st.Disconnects[ssekit.ReasonOverflow] != 0 || st.Dropped != 0 {
			t.Fatalf("overflow: %+v", st)
		}
	})
}
