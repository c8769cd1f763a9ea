package sseclient

import (
	"net/http"
	"testing"
	"time"
)

func TestBackoffGrowsAndResets(t *testing.T) {
	t.Parallel()
	b := newBackoff(time.Second, 10*time.Second)
	b.randN = func(n int64) int64 { return n - 1 } // always the bound
	var got []time.Duration
	for range 6 {
		got = append(got, b.next())
	}
	want := []time.Duration{1, 2, 4, 8, 10, 10}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("delays = %v, want %v s", got, want)
		}
	}
	b.reset()
	if got := b.next(); got != time.Second {
		t.Errorf("after reset: %v, want 1s", got)
	}
	b.setBase(time.Hour)
	if got := b.next(); got != 10*time.Second {
		t.Errorf("retry over the cap: %v, want the cap 10s", got)
	}
	b.setBase(0)
	b.reset()
	if got := b.next(); got != minRetry {
		t.Errorf("retry 0: %v, want the floor %v", got, minRetry)
	}
}

func TestBackoffFullJitter(t *testing.T) {
	t.Parallel()
	b := newBackoff(time.Second, 30*time.Second)
	var sawLow, sawHigh bool
	for range 200 {
		b.reset()
		d := b.next()
		if d < 0 || d > time.Second {
			t.Fatalf("delay %v outside [0, 1s]", d)
		}
		sawLow = sawLow || d < 300*time.Millisecond
		sawHigh = sawHigh || d > 700*time.Millisecond
	}
	if !sawLow || !sawHigh {
		t.Errorf("200 draws did not spread over [0, 1s]: low %v high %v", sawLow, sawHigh)
	}
	// Many failures never overflow the doubling.
	for range 200 {
		if d := b.next(); d < 0 || d > 30*time.Second {
			t.Fatalf("delay %v outside [0, 30s]", d)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"99999999999999999999", 0}, // not an int64: invalid
		{"9999999999999", maxRetry},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.in, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
