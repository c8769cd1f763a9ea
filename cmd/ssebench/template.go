package main

import "strings"

// A template is a publish URL or body cut at its variables once, so that
// each publish appends literal parts and values without scanning it:
//
//	{payload}  the event's JSON (payload.go)
//	{user}     the addressee of a targeted event, in UUID form
//	{events}   in a batch body: the events' bodies, joined by commas
type template []tmplPart

// tmplPart is a literal, or a variable when v is set.
type tmplPart struct {
	lit string
	v   string // "payload", "user", "events" or ""
}

var tmplVars = []string{"payload", "user", "events"}

// parseTemplate cuts s at its variables; other braces are literal.
func parseTemplate(s string) template {
	var t template
	lit := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '{' {
			continue
		}
		for _, v := range tmplVars {
			if strings.HasPrefix(s[i+1:], v+"}") {
				if lit < i {
					t = append(t, tmplPart{lit: s[lit:i]})
				}
				t = append(t, tmplPart{v: v})
				i += len(v) + 1
				lit = i + 1
				break
			}
		}
	}
	if lit < len(s) {
		t = append(t, tmplPart{lit: s[lit:]})
	}
	return t
}

// has reports whether t uses the variable v.
func (t template) has(v string) bool {
	for _, p := range t {
		if p.v == v {
			return true
		}
	}
	return false
}

// expand appends t to b with pl (padded to size) as {payload}, user as
// {user} and events as {events}.
func (t template) expand(b []byte, pl payload, size int, user, events []byte) []byte {
	for _, p := range t {
		switch p.v {
		case "":
			b = append(b, p.lit...)
		case "payload":
			b = appendPayload(b, pl, size)
		case "user":
			b = append(b, user...)
		case "events":
			b = append(b, events...)
		}
	}
	return b
}
