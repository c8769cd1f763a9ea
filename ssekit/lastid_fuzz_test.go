package ssekit_test

import (
	"context"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/ssekit/sse/internal/ssetest"
	"github.com/ssekit/sse/sseclient"
	"github.com/ssekit/sse/ssekit"
)

// idRe is ValidID's contract written as a regular expression: the oracle
// FuzzCompareIDs checks ValidID against.
var idRe = regexp.MustCompile(`^[0-9]+(-[0-9]+)*$`)

// numericCompare orders two valid ids the slow, obvious way: field by field
// as arbitrary-precision integers, a prefix before a longer id.
func numericCompare(a, b string) int {
	fa, fb := strings.Split(a, "-"), strings.Split(b, "-")
	for i := 0; i < len(fa) && i < len(fb); i++ {
		x, _ := new(big.Int).SetString(fa[i], 10)
		y, _ := new(big.Int).SetString(fb[i], 10)
		if c := x.Cmp(y); c != 0 {
			return c
		}
	}
	switch {
	case len(fa) < len(fb):
		return -1
	case len(fa) > len(fb):
		return 1
	}
	return 0
}

// FuzzCompareIDs checks ValidID against its written contract and that
// CompareIDs is a total order on any strings (antisymmetric, reflexive,
// transitive on valid ids, malformed before well-formed) that agrees with
// the numeric order of the fields. The hub trusts this order to decide
// what a resuming client has already seen, from an id the client sent.
func FuzzCompareIDs(f *testing.F) {
	f.Add("1", "2", "10")
	f.Add("1-9", "1-10", "2-0")
	f.Add("005-1", "5-1", "5-01")
	f.Add("1", "1-0", "1-0-0")
	f.Add("18446744073709551616-0", "18446744073709551615-99", "99999999999999999999999-1")
	f.Add("junk", "1", "")
	f.Add("-1", "1-", "1--2")
	f.Add(strings.Repeat("9", 128), strings.Repeat("9", 129), "0")
	f.Add("1 2", "1\x002", "١")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		for _, id := range []string{a, b, c} {
			if got, want := ssekit.ValidID(id), len(id) <= 128 && idRe.MatchString(id); got != want {
				t.Fatalf("ValidID(%q) = %v, want %v", id, got, want)
			}
			if got := ssekit.CompareIDs(id, id); got != 0 {
				t.Fatalf("CompareIDs(%q, itself) = %d", id, got)
			}
		}
		ab, ba := ssekit.CompareIDs(a, b), ssekit.CompareIDs(b, a)
		if ab < -1 || ab > 1 || ab != -ba {
			t.Fatalf("CompareIDs(%q, %q) = %d but the reverse is %d", a, b, ab, ba)
		}
		va, vb, vc := ssekit.ValidID(a), ssekit.ValidID(b), ssekit.ValidID(c)
		switch {
		case va && vb:
			if want := numericCompare(a, b); ab != want {
				t.Fatalf("CompareIDs(%q, %q) = %d, numeric order says %d", a, b, ab, want)
			}
		case va != vb:
			if want := map[bool]int{true: 1, false: -1}[va]; ab != want {
				t.Fatalf("CompareIDs(%q, %q) = %d, want %d: malformed sorts first", a, b, ab, want)
			}
		}
		if va && vb && vc {
			bc, ac := ssekit.CompareIDs(b, c), ssekit.CompareIDs(a, c)
			if ab <= 0 && bc <= 0 && ac > 0 {
				t.Fatalf("not transitive: %q <= %q <= %q but CompareIDs(a, c) = %d", a, b, c, ac)
			}
			if ab == 0 && bc == 0 && ac != 0 {
				t.Fatalf("equality not transitive: %q = %q = %q but CompareIDs(a, c) = %d", a, b, c, ac)
			}
		}
	})
}

// flushCanceler is a ResponseRecorder that ends the request once the
// stream has flushed, so that ServeStream returns after its opening (and
// replay) instead of waiting for live events.
type flushCanceler struct {
	*httptest.ResponseRecorder
	cancel context.CancelFunc
}

func (w flushCanceler) Flush() {
	w.ResponseRecorder.Flush()
	w.cancel()
}

// FuzzLastEventID serves a stream for any Last-Event-ID header or
// lastEventId query value, optionally starting with an id the broker
// really gave, and checks what the hub makes of it: it never panics; it
// resumes only from a well-formed id; an id it cannot resume from gets a
// resync that echoes the id only when it is well-formed; every id written
// is well-formed; and a malformed id, however long, is not written back.
func FuzzLastEventID(f *testing.F) {
	hub := ssekit.NewHub(ssekit.Config{HeartbeatInterval: -1, MaxStreamAge: -1, MaxClientsPerUser: -1, HistorySize: 16})
	f.Cleanup(func() { _ = hub.Close() })
	var known []string
	for i := range 20 { // more than HistorySize: the oldest ids are trimmed
		id, err := hub.Publish(context.Background(), ssekit.Target{All: true}, ssekit.Event{Type: "n", Data: i})
		if err != nil {
			f.Fatal(err)
		}
		known = append(known, "a"+id) // the broadcast channel's position, as the stream's id says
	}
	for _, s := range []string{"", "1", "0-0", "1-1", "junk", "1--2", "-1", "1-", " 1-1", "1-1 ",
		"1\r\n2", "\x00", "\xff\xfe", strings.Repeat("9", 128), strings.Repeat("9", 129), strings.Repeat("1-", 64) + "1",
		"a1-1", "a1-1.u2-2", "a1-1.a1-2", "c", "c1z", "cZZ", "c1.a1-1", "a1-1.c1", "u1-1", "a.u1", ".a1-1", "a1-1."} {
		f.Add(s, false, uint8(0))
		f.Add(s, true, uint8(0))
	}
	f.Add("", false, uint8(1)) // a kept id: resumes
	f.Add("", true, uint8(2))  // a trimmed id: resync
	f.Add("0", false, uint8(3))
	f.Add("-1", false, uint8(4))
	f.Fuzz(func(t *testing.T, raw string, viaQuery bool, pick uint8) {
		id := raw
		if pick != 0 {
			id = known[int(pick)%len(known)] + raw
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/stream", nil)
		if viaQuery {
			req.URL.RawQuery = "lastEventId=" + url.QueryEscape(id)
		} else if id != "" {
			req.Header["Last-Event-Id"] = []string{id} // as sent: net/http's checks are not ours
		}
		w := flushCanceler{httptest.NewRecorder(), cancel}
		hub.ServeStream(w, req, "")
		body := w.Body.String()
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/event-stream" {
			t.Fatalf("status %d %q, want a 200 event stream", w.Code, w.Header().Get("Content-Type"))
		}
		_, _, ours := ssetest.Positions(id)
		valid := ours || ssekit.ValidID(id) // echoed back in a resync
		if !valid && len(id) > 256 && len(body) > 1024 {
			t.Fatalf("%d-byte malformed id: %d-byte answer, was it echoed?", len(id), len(body))
		}
		dec := sseclient.NewDecoder(strings.NewReader(body))
		first, err := dec.Next()
		if err != nil || first.Type != ssekit.TypeConnected {
			t.Fatalf("opening %q (%v), want connected; body %q", first.Type, err, body)
		}
		var opening struct{ Resumed bool }
		if err := json.Unmarshal(first.Data, &opening); err != nil {
			t.Fatalf("connected data %q: %v", first.Data, err)
		}
		if opening.Resumed && !ours {
			t.Fatalf("resumed from an id %q that is not the hub's", id)
		}
		prev, resynced := "", false
		for {
			ev, err := dec.Next()
			if err != nil {
				break
			}
			if _, _, ok := ssetest.Positions(ev.ID); ev.ID != "" && !ok {
				t.Fatalf("wrote malformed id %q", ev.ID)
			}
			switch ev.Type {
			case ssekit.TypeResync:
				var rs struct {
					LastEventID string `json:"last_event_id"`
				}
				if err := json.Unmarshal(ev.Data, &rs); err != nil {
					t.Fatalf("resync data %q: %v", ev.Data, err)
				}
				if want := map[bool]string{true: id, false: ""}[valid]; rs.LastEventID != want {
					t.Fatalf("resync echoes %q for id %q, want %q", rs.LastEventID, id, want)
				}
				if opening.Resumed || resynced {
					t.Fatalf("resync on a resumed stream, or twice; body %q", body)
				}
				resynced = true
			default:
				if !opening.Resumed {
					t.Fatalf("event %q replayed to a stream that did not resume from %q", ev.ID, id)
				}
				if prev != "" && !ssetest.Moved(prev, ev.ID) {
					t.Fatalf("replayed %q after %q: not in order", ev.ID, prev)
				}
				prev = ev.ID
			}
		}
		if id != "" && !opening.Resumed && !resynced {
			t.Fatalf("id %q neither resumed nor resynced; body %q", id, body)
		}
	})
}
