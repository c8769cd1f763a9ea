package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ssekit/sse/sseclient"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestQuickstartEcho5Runs runs the example app and reads its stream as the
// page would: the demo user gets notifications and badge counts;
// cancelling the context, with the stream still open, shuts it down
// cleanly.
func TestQuickstartEcho5Runs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, ln, io.Discard, 20*time.Millisecond) }()

	base := "http://" + ln.Addr().String()
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "new EventSource('/api/sse/stream'") {
		t.Fatalf("page does not open the stream: %.200s", body)
	}

	subCtx, subCancel := context.WithTimeout(ctx, 15*time.Second)
	defer subCancel()
	seen := map[string]bool{}
	errDone := errors.New("done")
	err = sseclient.Subscribe(subCtx, base+"/api/sse/stream?user="+demoUser.String(), func(ev sseclient.Event) error {
		seen[ev.Type] = true
		if seen["connected"] && seen["notification"] && seen["badge_update"] {
			return errDone
		}
		return nil
	})
	if !errors.Is(err, errDone) {
		t.Fatalf("subscribe: %v; saw %v", err, seen)
	}

	// A stream left open: the shutdown must close it, not wait for it.
	open, err := http.Get(base + "/api/sse/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(5 * time.Second): // Start's graceful timeout is 10 s
		t.Fatal("run did not return: the open stream held the shutdown")
	}
	if _, err := io.Copy(io.Discard, open.Body); err != nil {
		t.Fatalf("open stream: %v, want a clean end", err)
	}
}
