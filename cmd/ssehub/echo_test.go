package main

import (
	"strings"
	"testing"
)

func TestQuoteInput(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"", `""`},
		{"alice", `"alice"`},
		{"a\nb", `"a\nb"`},
		{strings.Repeat("a", maxEcho), `"` + strings.Repeat("a", maxEcho) + `"`},
		{strings.Repeat("a", maxEcho+1), `"` + strings.Repeat("a", maxEcho) + `"…`},
		// A character across the cut is left out whole, not split.
		{strings.Repeat("a", maxEcho-1) + "é" + "zzz", `"` + strings.Repeat("a", maxEcho-1) + `"…`},
	}
	for _, tc := range cases {
		if got := quoteInput(tc.in); got != tc.want {
			t.Errorf("quoteInput(%.80q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if got := quoteInput(strings.Repeat("\x00", 40<<10)); len(got) > 8*maxEcho {
		t.Errorf("40 KB of NULs quoted to %d bytes", len(got))
	}
	if got, want := capInput(strings.Repeat("h", 40<<10)), strings.Repeat("h", maxEcho)+"…"; got != want {
		t.Errorf("capInput of 40 KB = %.80q, want %.80q", got, want)
	}
	if got := capInput("localhost:8080"); got != "localhost:8080" {
		t.Errorf("capInput(localhost:8080) = %q", got)
	}
}
