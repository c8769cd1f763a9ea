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
// first events after a quiet spell are written at once; once the stream
// has written twice within WriteDelay it is busy, and events that follow
// wait for its next round and go out in one write; with WriteDelay
// negative, each is written as it comes.
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

				for i, typ := range []string{"first", "second"} {
					hub.SendToAll(ssekit.Event{Type: typ})
					synctest.Wait()
					if got := rec.Writes() - opened; got != i+1 {
						t.Fatalf("%d writes after the %s event, want %d: each at once", got, typ, i+1)
					}
				}
				opened++ // the second's write
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

// TestQuietStreamIsWrittenAtOnceWhileOthersAreBusy shows the targeted
// case: while one user's stream is busy (it wrote within WriteDelay, and
// its next events wait for the round), an event to a quiet user's stream
// is written as it comes, not in the busy stream's round.
func TestQuietStreamIsWrittenAtOnceWhileOthersAreBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := ssekit.NewHub(ssekit.Config{WriteDelay: time.Hour, BufferSize: 64, HeartbeatInterval: -1, MaxStreamAge: -1})
		ctx, cancel := context.WithCancel(context.Background())
		busy, quiet := newRecorder(), newRecorder()
		done1, done2 := serve(hub, busy, ctx, "busy"), serve(hub, quiet, ctx, "quiet")
		defer func() {
			cancel()
			<-done1
			<-done2
			hub.Close()
		}()
		synctest.Wait()
		send := func(user, typ string) {
			t.Helper()
			if _, err := hub.Publish(t.Context(), ssekit.Target{Users: []string{user}}, ssekit.Event{Type: typ}); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		busyOpened, quietOpened := busy.Writes(), quiet.Writes()
		send("busy", "first")  // quiet until now: at once
		send("busy", "second") // at once too: it wrote only once
		send("busy", "held")   // it wrote twice within WriteDelay: busy, waits for the round
		if got := busy.Writes() - busyOpened; got != 2 {
			t.Fatalf("busy stream: %d writes, want 2 (its first two events; the third waits for the round)", got)
		}
		for i := range 3 { // a quiet stream each time: at once, every time
			send("quiet", "ping")
			if got := quiet.Writes() - quietOpened; got != 1 {
				t.Fatalf("quiet stream: %d writes after its event, want 1 at once", got)
			}
			quietOpened = quiet.Writes()
			time.Sleep(2 * time.Hour) // quiet again; the busy stream's round runs
			synctest.Wait()
			if i == 0 && !strings.Contains(busy.String(), "event: held\n") {
				t.Fatal("the busy stream's held event was not written in its round")
			}
		}
	})
}

// TestHalfFullQueueIsWrittenWithoutWaiting shows that WriteDelay never turns
// into an overflow: a stream whose queue is half full is woken at once,
// whatever the round.
func TestHalfFullQueueIsWrittenWithoutWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, rec, stop := bubbleStream(ssekit.Config{WriteDelay: time.Hour, BufferSize: 4})
		defer stop()
		// Two writes within WriteDelay: the stream is busy, and what
		// follows waits for its round.
		for _, typ := range []string{"first", "second"} {
			hub.SendToAll(ssekit.Event{Type: typ})
			synctest.Wait()
		}
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

// TestStreamThatGatheredStaysBusy: a stream whose last write carried
// several events gets events faster than it writes (a hub under load, where
// writes lag behind), so its next event waits for the round too, however
// long ago that write was; once a write carries one event, it is quiet
// again and the next is written at once.
func TestStreamThatGatheredStaysBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, rec, stop := bubbleStream(ssekit.Config{WriteDelay: 40 * time.Millisecond, BufferSize: 64, HeartbeatInterval: -1, MaxStreamAge: -1})
		defer stop()
		send := func(typ string) {
			hub.SendToAll(ssekit.Event{Type: typ})
			synctest.Wait()
		}
		send("first")
		send("second") // two writes within WriteDelay: busy
		for range 3 {
			send("gathered")
		}
		time.Sleep(time.Hour) // the round writes the three at once, and long after…
		synctest.Wait()
		before := rec.Writes()
		send("after") // …the stream is still busy: it waits for a round
		if got := rec.Writes() - before; got != 0 {
			t.Fatalf("%d writes at once after a write that gathered, want 0 (the round)", got)
		}
		time.Sleep(40 * time.Millisecond)
		synctest.Wait()
		if got := rec.Writes() - before; got != 1 {
			t.Fatalf("%d writes after the round, want 1", got)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		send("quiet") // its last write carried one event: quiet, at once
		if got := rec.Writes() - before; got != 2 {
			t.Fatalf("%d writes, want the quiet event written at once", got-1)
		}
	})
}
