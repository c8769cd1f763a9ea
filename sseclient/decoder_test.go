package sseclient_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ssekit/sse/sseclient"
)

// decodeAll returns every event of stream and the error that ended it.
func decodeAll(t *testing.T, r io.Reader, max int) ([]sseclient.Event, *sseclient.Decoder, error) {
	t.Helper()
	d := sseclient.NewDecoder(r)
	if max > 0 {
		d.SetMaxEventSize(max)
	}
	var evs []sseclient.Event
	for range 10000 {
		ev, err := d.Next()
		if err != nil {
			return evs, d, err
		}
		evs = append(evs, ev)
	}
	t.Fatal("decoder did not stop")
	return nil, nil, nil
}

// render writes events compactly for comparison: id|type|data;…
func render(evs []sseclient.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString(ev.ID + "|" + ev.Type + "|" + string(ev.Data) + ";")
	}
	return b.String()
}

func TestDecoderSpec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"simple", "data: hello\n\n", "|message|hello;"},
		{"bom skipped once", "\xEF\xBB\xBFdata: a\n\n", "|message|a;"},
		{"second bom is data", "\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n", "|message|b;"},
		{"crlf", "data: a\r\n\r\n", "|message|a;"},
		{"cr", "data: a\r\rdata: b\r\r", "|message|a;|message|b;"},
		{"mixed endings", "data: a\r\ndata: b\rdata: c\n\r\n", "|message|a\nb\nc;"},
		{"comment", ": hi\ndata: a\n:\n\n", "|message|a;"},
		{"multi data", "data: a\ndata:b\ndata:  c\n\n", "|message|a\nb\n c;"},
		{"empty data", "data\n\ndata:\n\n", "|message|;|message|;"},
		{"event type", "event: ping\ndata: x\n\ndata: y\n\n", "|ping|x;|message|y;"},
		{"empty event resets to message", "event:\ndata: x\n\n", "|message|x;"},
		{"no data no event", "event: ping\n\nid: 3\n\n", ""},
		{"id persists", "id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n", "1|message|a;1|message|b;|message|c;"},
		{"id with nul ignored", "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", "1|message|a;1|message|b;"},
		{"unknown field", "foo: bar\ndata: a\nDATA: b\n\n", "|message|a;"},
		{"field without colon", "data\ndata\n\n", "|message|\n;"},
		{"unterminated last event", "data: a\n\ndata: b\n", "|message|a;"},
		{"unterminated last line", "data: a\n\ndata: b", "|message|a;"},
		{"cr at eof ends blank line", "data: a\n\r", "|message|a;"},
		{"space only once", "data:   x\n\n", "|message|  x;"},
		{"colon in value", "data: a:b\n\n", "|message|a:b;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// One byte at a time too: no line ending may depend on how
			// the stream was cut into reads.
			for _, r := range []io.Reader{strings.NewReader(tt.in), iotest.OneByteReader(strings.NewReader(tt.in))} {
				evs, _, err := decodeAll(t, r, 0)
				if err != io.EOF {
					t.Fatalf("err = %v, want io.EOF", err)
				}
				if got := render(evs); got != tt.want {
					t.Errorf("events = %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestDecoderRetry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"retry: 1500\n\n", 1500 * time.Millisecond, true},
		{"retry: 1500\nretry: x\n\n", 1500 * time.Millisecond, true},
		{"retry: 15a\n\n", 0, false},
		{"retry: -1\n\n", 0, false},
		{"retry:\n\n", 0, false},
		{"retry: 1 \n\n", 0, false},
		{"retry: 7\n", 7 * time.Millisecond, true}, // applies before dispatch
		{"retry: 99999999999999999999999\n\n", time.Duration(1<<63-1) / time.Millisecond * time.Millisecond, true},
	}
	for _, tt := range tests {
		_, d, _ := decodeAll(t, strings.NewReader(tt.in), 0)
		if got, ok := d.Retry(); got != tt.want || ok != tt.ok {
			t.Errorf("%q: Retry() = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestDecoderLastEventID(t *testing.T) {
	t.Parallel()
	_, d, _ := decodeAll(t, strings.NewReader("id: 1\ndata: a\n\nid: 2\n\nid: 3\ndata: b\n"), 0)
	if got, want := d.LastEventID(), "2"; got != want {
		t.Errorf("LastEventID() = %q, want %q (a data-less dispatch moves it, an unterminated one does not)", got, want)
	}
	d = sseclient.NewDecoder(strings.NewReader("data: a\n\n"))
	d.SetLastEventID("7")
	if ev, err := d.Next(); err != nil || ev.ID != "7" {
		t.Errorf("Next() = %+v, %v; want ID 7 inherited", ev, err)
	}
}

func TestDecoderMaxEventSize(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in string }{
		{"many data lines", strings.Repeat("data: 0123456789\n", 20) + "\n"},
		{"one long line", "data: " + strings.Repeat("x", 300) + "\n\n"},
		{"long comment", ":" + strings.Repeat("x", 300) + "\n\n"},
	}
	for _, tt := range tests {
		_, d, err := decodeAll(t, strings.NewReader(tt.in), 100)
		if !errors.Is(err, sseclient.ErrEventTooLarge) {
			t.Errorf("%s: err = %v, want ErrEventTooLarge", tt.name, err)
		}
		if _, err2 := d.Next(); !errors.Is(err2, sseclient.ErrEventTooLarge) {
			t.Errorf("%s: second Next err = %v, want the same error", tt.name, err2)
		}
	}
	// Exactly the limit passes.
	evs, _, err := decodeAll(t, strings.NewReader("data: "+strings.Repeat("x", 100)+"\n\n"), 100)
	if err != io.EOF || len(evs) != 1 {
		t.Errorf("100-byte event with limit 100: %d events, err %v", len(evs), err)
	}
}

func TestEventDecode(t *testing.T) {
	t.Parallel()
	var v struct{ N int }
	if err := (sseclient.Event{Data: []byte(`{"n":3}`)}).Decode(&v); err != nil || v.N != 3 {
		t.Errorf("Decode = %v, N=%d", err, v.N)
	}
}
