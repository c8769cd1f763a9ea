package main

import (
	"strconv"
	"unicode/utf8"
)

// maxEcho bounds how much of a client's input a refusal repeats, in its
// answer and in the log line about it. A refusal quotes what it refuses
// so that an honest client sees its mistake; 64 bytes are plenty for that
// (a uuid is 36), while a hostile one sending a 40 KB claim or id must not
// get 40 KB written to the logs per request, before any authentication.
const maxEcho = 64

// quoteInput quotes s as %q does, cut to its first maxEcho bytes (at a
// character boundary) followed by "…" when it is longer. Every value a
// client sent that a message repeats goes through it.
func quoteInput(s string) string {
	head, cut := cutInput(s)
	if cut {
		return strconv.Quote(head) + "…"
	}
	return strconv.Quote(head)
}

// capInput is quoteInput without the quotes, for a log attribute, which
// the log handler quotes itself.
func capInput(s string) string {
	head, cut := cutInput(s)
	if cut {
		return head + "…"
	}
	return head
}

// cutInput returns the first maxEcho bytes of s, backing off to a
// character boundary, and whether anything was cut.
func cutInput(s string) (string, bool) {
	if len(s) <= maxEcho {
		return s, false
	}
	cut := maxEcho
	for i := 0; i < utf8.UTFMax && cut > 0 && !utf8.RuneStart(s[cut]); i++ {
		cut--
	}
	return s[:cut], true
}
