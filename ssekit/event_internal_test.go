package ssekit

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ssekit/sse/sseclient"
)

// FuzzEncode checks that any event is either rejected with a named error
// or written as a frame that a spec-compliant parser reads back unchanged.
func FuzzEncode(f *testing.F) {
	f.Add("notification", `{"title":"hi"}`, true)
	f.Add("", "plain text", false)
	f.Add("a\nb", `1`, true)
	f.Add("x\r", "line1\nline2\r\nline3", false)
	f.Add("nul\x00", `"s"`, true)
	f.Add(" lead", "{\n \"a\": [1, 2]\n}", true)
	f.Add("\xff", `"bad utf8 type"`, true)
	f.Add("t", "\"\xff\"", true)
	f.Add("t", "\ufeffbom", false)
	f.Fuzz(func(t *testing.T, typ, data string, raw bool) {
		ev := Event{Type: typ, Data: data}
		if raw {
			ev.Data = json.RawMessage(data)
		}
		p, err := encode(ev, 1<<20)
		if err != nil {
			if !errors.Is(err, ErrInvalidEvent) && !errors.Is(err, ErrEventTooLarge) {
				t.Fatalf("unnamed error %v", err)
			}
			return
		}
		if strings.ContainsAny(typ, "\r\n\x00") {
			t.Fatalf("type %q accepted", typ)
		}
		frame := appendFrame(nil, "7-42", p.typ, p.data)
		if len(frame) != frameSize("7-42", p.typ, p.data) {
			t.Fatalf("frameSize %d, frame %d bytes", frameSize("7-42", p.typ, p.data), len(frame))
		}
		dec := sseclient.NewDecoder(strings.NewReader(string(frame)))
		got, err := dec.Next()
		if err != nil {
			t.Fatalf("frame %q does not parse: %v", frame, err)
		}
		wantType := typ
		if wantType == "" {
			wantType = "message"
		}
		if got.Type != wantType || got.ID != "7-42" || string(got.Data) != string(p.data) {
			t.Fatalf("frame %q parsed as %q/%q/%q, want %q/7-42/%q", frame, got.Type, got.ID, got.Data, wantType, p.data)
		}
		if !raw {
			var back string
			if err := json.Unmarshal(got.Data, &back); err != nil || back != string([]rune(data)) {
				t.Fatalf("data %q came back as %q (%v)", data, back, err)
			}
		}
		if _, err := dec.Next(); err == nil {
			t.Fatalf("frame %q holds more than one event", frame)
		}
	})
}

func TestCompareIDs(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1", "2", -1},
		{"10", "9", 1},
		{"1-9", "1-10", -1},
		{"2-0", "1-99", 1},
		{"5-5", "5-5", 0},
		{"005-1", "5-1", 0},
		{"1", "1-0", -1},
		{"1700000000000-0", "1700000000000-1", -1},
		{"946684800000000000-12", "946684800000000001-1", -1},
		{"junk", "1", -1},
		{"1", "junk", 1},
	}
	for _, tc := range tests {
		if got := CompareIDs(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareIDs(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareIDs(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareIDs(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"1": true, "0-0": true, "1700000000000-3": true, "1-2-3": true,
		"": false, "-1": false, "1-": false, "1--2": false, "a": false, "1 2": false,
		strings.Repeat("9", 128): true, strings.Repeat("9", 129): false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}
