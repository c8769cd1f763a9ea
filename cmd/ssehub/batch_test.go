package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ssekit/sse/ssekit"
)

// batchOf posts body as a batch and decodes the answer.
func batchOf(t *testing.T, base, body string) (int, batchResponse) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/sse/publish", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out batchResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("batch answer: %v", err)
	}
	return resp.StatusCode, out
}

func TestBatchPublishAnswersEachEvent(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t), nil)
	alice, bob := newUser(), newUser()
	sa := openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(token(t, alice)))
	sb := openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(token(t, bob)))
	sa.nextOf(t, "connected")
	sb.nextOf(t, "connected")

	status, out := batchOf(t, ta.srv.URL, `[
		{"users":["`+alice+`"],"type":"for_alice","data":1,"idempotency_key":"k-1"},
		{"user":["`+bob+`"],"type":"typo"},
		{"users":["`+bob+`"],"type":"for_bob","data":2},
		{"users":[],"type":"nobody"},
		{"users":["`+alice+`"],"type":"for_alice","data":1,"idempotency_key":"k-1"},
		{"users":["`+alice+`"],"type":"other","idempotency_key":"k-1"},
		{"all":true,"type":"x","data":1,"data":2},
		{"users":["`+bob+`"],"type":"end"},
		{"users":["`+alice+`"],"type":"end"}
	]`)
	if status != http.StatusOK {
		t.Fatalf("batch: %d %+v", status, out)
	}
	wantStatus := []int{200, 400, 200, 400, 200, 422, 400, 200, 200}
	if len(out.Results) != len(wantStatus) {
		t.Fatalf("%d results, want %d: %+v", len(out.Results), len(wantStatus), out)
	}
	for i, want := range wantStatus {
		r := out.Results[i]
		if r.Status != want || (want == 200) != (r.ID != "") || (want != 200) != (r.Error != "" && strings.HasPrefix(r.Message, fmt.Sprintf("events[%d]: ", i))) {
			t.Errorf("result %d = %+v, want status %d", i, r, want)
		}
	}
	if r := out.Results[4]; !r.Replayed || r.ID != out.Results[0].ID {
		t.Errorf("the key's repeat = %+v, want a replay of %q", r, out.Results[0].ID)
	}
	if got := out.Results[5].Error; got != "idempotency_key_reused" {
		t.Errorf("a key reused for another event: error %q", got)
	}
	if out.Published != 5 || out.Failed != 4 {
		t.Errorf("published %d, failed %d; want 5 and 4", out.Published, out.Failed)
	}
	// Each stream gets its own events, once, in order; nothing of a
	// refused event went anywhere.
	for _, typ := range []string{"for_alice", "end"} {
		sa.nextOf(t, typ)
	}
	for _, typ := range []string{"for_bob", "end"} {
		sb.nextOf(t, typ)
	}
}

func TestBatchPublishLimits(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, testConfig(t, "--max-batch-bytes", "2000000"), nil)
	one := `{"all":true,"type":"n"}`
	for _, tc := range []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"too many events", "[" + strings.Repeat(one+",", ssekit.MaxBatch) + one + "]", http.StatusRequestEntityTooLarge, "payload_too_large"},
		{"empty", "[]", http.StatusBadRequest, "bad_request"},
		{"not an array of values", "[{", http.StatusBadRequest, "bad_request"},
		{"not an array of objects", `[{"all":true,"type":"n"}, 7]`, http.StatusBadRequest, "bad_request"},
		{"over --max-batch-bytes", `[{"all":true,"type":"n","data":"` + strings.Repeat("x", 2000000) + `"}]`, http.StatusRequestEntityTooLarge, "payload_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := publish(t, ta.srv.URL, testKey, tc.body)
			if status != tc.status || out["error"] != tc.code {
				t.Fatalf("%d %v, want %d %s", status, out, tc.status, tc.code)
			}
		})
	}
	if n := ta.hub.Stats().Published; n != 0 {
		t.Fatalf("%d published by refused batches", n)
	}
	// A batch may be larger than one publish may (--max-publish-bytes);
	// each of its events is held to --max-event-size (64 KiB) alone.
	big := `{"all":true,"type":"n","data":"` + strings.Repeat("x", 40000) + `"}`
	status, out := batchOf(t, ta.srv.URL, "["+strings.Repeat(big+",", 29)+big+"]")
	if status != http.StatusOK || out.Published != 30 {
		t.Fatalf("a 1.2 MB batch of 40 kB events: %d, %d published", status, out.Published)
	}
	huge := `{"all":true,"type":"n","data":"` + strings.Repeat("x", 70000) + `"}`
	status, out = batchOf(t, ta.srv.URL, "["+one+","+huge+","+one+"]")
	if status != http.StatusOK || out.Published != 2 || out.Results[1].Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("a batch with one event over --max-event-size: %d %+v, want 200, that event 413 and the others published", status, out)
	}
	// --max-batch-bytes holds even below --max-publish-bytes.
	small := newTestApp(t, testConfig(t, "--max-batch-bytes", "1000"), nil)
	mid := `{"all":true,"type":"n","data":"` + strings.Repeat("x", 2000) + `"}`
	if status, out := publish(t, small.srv.URL, testKey, "["+mid+"]"); status != http.StatusRequestEntityTooLarge || out["error"] != "payload_too_large" {
		t.Fatalf("a 2 kB batch over --max-batch-bytes 1000: %d %v, want 413", status, out)
	}
	if status, _ := publish(t, small.srv.URL, testKey, mid); status != http.StatusOK {
		t.Fatalf("a 2 kB single publish under --max-publish-bytes: %d, want 200", status)
	}
	req, _ := http.NewRequest(http.MethodPost, ta.srv.URL+"/sse/publish", strings.NewReader("["+one+"]"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set(idempotencyHeader, "k")
	if status, out := doJSON(t, req); status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["message"]), "idempotency_key") {
		t.Fatalf("Idempotency-Key on a batch: %d %v, want 400 pointing to idempotency_key", status, out)
	}
}

func TestPublishCommandBatch(t *testing.T) {
	t.Parallel()
	// A buffer for all of them: the stream reads while they are published.
	ta := newTestApp(t, testConfig(t, "--buffer-size", "4096"), nil)
	user := newUser()
	s := openStream(t, ta.srv.URL+"/sse/stream", bearerAuth(token(t, user)))
	s.nextOf(t, "connected")
	var lines []string
	for i := range 1500 { // two batches
		lines = append(lines, fmt.Sprintf(`{"users":[%q],"type":"n","data":%d}`, user, i))
	}
	lines = append(lines, "", "not json", `{"users":[],"type":"n"}`, fmt.Sprintf(`{"users":[%q],"type":"end"}`, user))
	var stdout, stderr bytes.Buffer
	err := publishCommand(t.Context(), []string{"--url", ta.srv.URL, "--publish-key", testKey, "--batch", "-"}, noEnv,
		strings.NewReader(strings.Join(lines, "\n")), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "2 of 1503 events failed") {
		t.Fatalf("publish --batch = %v, want 2 of 1503 failed", err)
	}
	dec := json.NewDecoder(&stdout)
	var got []lineResult
	for dec.More() {
		var r lineResult
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != 1503 {
		t.Fatalf("%d results, want one per event line (1503)", len(got))
	}
	for _, r := range got {
		bad := r.Line == 1502 || r.Line == 1503 // "not json", the empty list; line 1501 is blank
		if (r.Status == http.StatusOK) == bad || (r.Status == http.StatusOK) != (r.ID != "") {
			t.Errorf("line %d: %+v", r.Line, r)
		}
	}
	for i := range 1500 {
		ev := s.nextOf(t, "n")
		if string(ev.Data) != fmt.Sprint(i) {
			t.Fatalf("event %d has data %s: out of order or missing", i, ev.Data)
		}
	}
	s.nextOf(t, "end")
	if err := publishCommand(t.Context(), []string{"--publish-key", testKey, "--batch", "-", "--type", "x"}, noEnv, strings.NewReader(""), &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "leave out --type") {
		t.Fatalf("--batch with --type = %v", err)
	}
}
