package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestBatchPublish checks the batch mode: 10 targeted events in batches
// of 4 make 3 requests (4, 4, 2), each a valid JSON body of the batch
// template, every event numbered for its addressee.
func TestBatchPublish(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sizes []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Commands []struct {
				Publish struct {
					Channel string          `json:"channel"`
					Data    json.RawMessage `json:"data"`
				} `json:"publish"`
			} `json:"commands"`
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("body %s: %v", b, err)
		}
		for _, c := range body.Commands {
			pl, ok := parsePayload(c.Publish.Data)
			if !ok || !pl.targeted() || c.Publish.Channel != "#"+userName(pl.u) {
				t.Errorf("command %+v: payload %+v, %v", c, pl, ok)
			}
		}
		mu.Lock()
		sizes = append(sizes, len(body.Commands))
		mu.Unlock()
		w.Write([]byte(`{"replies":[]}`))
	}))
	defer srv.Close()
	res, err := publish(context.Background(), publishConfig{
		URL: srv.URL, Body: `{"publish":{"channel":"#{user}","data":{payload}}}`, BatchBody: `{"commands":[{events}]}`,
		Batch: 4, Count: 10, Concurrency: 1, Targeted: true, Timeout: 10 * time.Second, FailOn: `"error"`,
	}, []uint64{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Requests, int64(3); got != want || !slices.Equal(sizes, []int{4, 4, 2}) {
		t.Errorf("requests %d of %v events, want %d of [4 4 2]", got, sizes, want)
	}
	if res.Accepted != 10 || res.Failed != 0 {
		t.Errorf("accepted %d, failed %d; want 10, 0 (errors %v)", res.Accepted, res.Failed, res.Errors)
	}
	var total int64
	for _, n := range res.Expect.PerUser {
		total += n
	}
	if total != 10 {
		t.Errorf("events expected over the users: %d, want 10", total)
	}
}

// TestFailOn checks that a 200 answer carrying an error is a failure, and
// that a targeted event whose publish failed is expected by nobody.
func TestFailOn(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"error":{"code":102,"message":"unknown channel"}}`))
	}))
	defer srv.Close()
	res, err := publish(context.Background(), publishConfig{
		URL: srv.URL, Body: `{"channel":"#{user}","data":{payload}}`, Batch: 1, Count: 3, Concurrency: 1,
		Targeted: true, Timeout: 10 * time.Second, FailOn: `"error"`,
	}, []uint64{1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 3 || res.Accepted != 0 || len(res.Expect.Failed) != 3 || res.Expect.of(1) != 0 {
		t.Errorf("failed %d accepted %d, failed list %v, user 1 expects %d; want 3, 0, 3 entries, 0",
			res.Failed, res.Accepted, res.Expect.Failed, res.Expect.of(1))
	}
}

func TestTemplate(t *testing.T) {
	t.Parallel()
	tm := parseTemplate(`{"users":["{user}"],"x":{y},"data":{payload}}`)
	got := string(tm.expand(nil, payload{g: 1, p: 2, s: 3, t: 4}, 0, []byte("U"), nil))
	if want := `{"users":["U"],"x":{y},"data":{"g":1,"p":2,"s":3,"t":4}}`; got != want {
		t.Errorf("expand = %s, want %s", got, want)
	}
}
