package main

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ssekit/sse/internal/benchwire"
)

type event struct{ typ, data string }

// parseAll decodes a whole stream.
func parseAll(r io.Reader) ([]event, error) {
	p := newParser(r, 16)
	var out []event
	for {
		typ, data, err := p.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return out, err
		}
		out = append(out, event{string(typ), string(data)})
	}
}

func TestParser(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []event
	}{
		{"basic", "event: a\ndata: x\n\n", []event{{"a", "x"}}},
		{"crlf", "event: a\r\ndata: x\r\n\r\ndata: y\r\n\r\n", []event{{"a", "x"}, {"", "y"}}},
		{"cr", "data: x\r\rdata: y\r\r", []event{{"", "x"}, {"", "y"}}},
		{"multi data", "data: a\ndata:b\ndata\n\n", []event{{"", "a\nb\n"}}},
		{"bom", "\xEF\xBB\xBFdata: x\n\n", []event{{"", "x"}}},
		{"comments and unknown", ": hi\nretry: 10\nfoo: bar\ndata: x\n\n", []event{{"", "x"}}},
		{"no data no event", "event: a\n\ndata: x\n\n", []event{{"", "x"}}},
		{"two spaces", "data:  x\n\n", []event{{"", " x"}}},
		{"unterminated dropped", "data: x\n\ndata: y\n", []event{{"", "x"}}},
		{"long line", "data: " + strings.Repeat("z", 100) + "\n\n", []event{{"", strings.Repeat("z", 100)}}},
	}
	for _, tt := range tests {
		for _, one := range []bool{false, true} {
			var r io.Reader = strings.NewReader(tt.in)
			if one {
				r = iotest.OneByteReader(r)
			}
			got, err := parseAll(r)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%s (one byte %v): got %q, want %q", tt.name, one, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("%s (one byte %v): event %d = %q, want %q", tt.name, one, i, got[i], tt.want[i])
				}
			}
		}
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	want := payload{g: 17, p: 3, s: 5, t: 1764190000123456789}
	for _, size := range []int{0, 200} {
		b := appendPayload(nil, want, size)
		if len(b) < size {
			t.Errorf("size %d: got %d bytes", size, len(b))
		}
		got, ok := parsePayload(b)
		if !ok || got != want {
			t.Errorf("size %d: parse(%s) = %+v, %v", size, b, got, ok)
		}
	}
	if _, ok := parsePayload([]byte(`{"client_id":"x"}`)); ok {
		t.Error("a connected event parsed as a payload")
	}
}

func TestHist(t *testing.T) {
	t.Parallel()
	var h hist
	for v := uint64(1); v <= 1000; v++ {
		h.record(v)
	}
	for _, c := range []struct {
		q    float64
		want uint64
	}{{0.5, 500}, {0.99, 990}} {
		if got := h.quantile(c.q); got < c.want*97/100 || got > c.want*103/100 {
			t.Errorf("quantile(%v) = %d, want %d ± 3%%", c.q, got, c.want)
		}
	}
	for _, v := range []uint64{0, 31, 32, 33, 1 << 20, 1<<60 + 5} {
		if i := benchwire.Bucket(v); i >= benchwire.NBuckets || bucketMid(i) > v+v/16+1 || bucketMid(i)+bucketMid(i)/16+1 < v {
			t.Errorf("bucket of %d: %d (mid %d)", v, i, bucketMid(i))
		}
	}
}

// BenchmarkParse measures the generator's per-event cost of decoding a
// stream: it must allocate nothing per event.
func BenchmarkParse(b *testing.B) {
	var stream bytes.Buffer
	for i := range 1000 {
		stream.WriteString("id: 1764190000-")
		stream.WriteString(strings.Repeat("1", i%5+1))
		stream.WriteString("\nevent: bench\ndata: ")
		stream.Write(appendPayload(nil, payload{g: uint64(i), p: 1, s: uint64(i), t: 1764190000123456789}, 0))
		stream.WriteString("\n\n")
	}
	r := bytes.NewReader(stream.Bytes())
	p := newParser(r, readBufSize)
	var tr tracker
	b.ReportAllocs()
	b.SetBytes(int64(stream.Len() / 1000))
	b.ResetTimer()
	for i := range b.N {
		_, data, err := p.next()
		if err == io.EOF {
			r.Reset(stream.Bytes())
			_, data, err = p.next()
		}
		if err != nil {
			b.Fatal(err)
		}
		pl, _ := parsePayload(data)
		pl.g = uint64(i) // keep the bitmap growing as in a long run
		tr.observe(pl, 0)
	}
}

// FuzzParser checks that the parser never panics and that how the stream
// is cut into reads does not change the events it yields.
func FuzzParser(f *testing.F) {
	for _, s := range []string{
		"event: a\ndata: x\n\n",
		"\xEF\xBB\xBFdata: x\r\n\r\n",
		"data: a\rdata: b\r\r: c\nid: 1\x00\n\n",
		"data\n\ndata:\n\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		whole, err := parseAll(strings.NewReader(s))
		if err != nil {
			return // a line over the limit: nothing to compare
		}
		split, err := parseAll(iotest.OneByteReader(strings.NewReader(s)))
		if err != nil {
			t.Fatalf("one byte at a time: %v", err)
		}
		if len(whole) != len(split) {
			t.Fatalf("%q: %d events whole, %d one byte at a time", s, len(whole), len(split))
		}
		for i := range whole {
			if whole[i] != split[i] {
				t.Fatalf("%q: event %d = %q whole, %q one byte at a time", s, i, whole[i], split[i])
			}
		}
	})
}
