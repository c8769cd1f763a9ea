package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestPublishCommand runs `ssehub publish` against an in-process server
// and checks that the event it prints the id of reaches the user.
func TestPublishCommand(t *testing.T) {
	t.Parallel()
	r := startRun(t, nil, testEnv)
	user := newUser()
	s := openStream(t, r.url+"/sse/stream", bearerAuth(token(t, user)))
	s.nextOf(t, "connected")

	env := map[string]string{"SSEHUB_URL": r.url, "SSEHUB_PUBLISH_KEY": testKey}
	getenv := func(k string) string { return env[k] }
	var out bytes.Buffer
	err := run(t.Context(), []string{"publish", "--user", user, "--type", "notification", "--data", `{"title":"From the CLI"}`}, getenv, &out, &out)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	id := strings.TrimSpace(out.String())
	ev := s.nextOf(t, "notification")
	if ev.ID != id || ev.Data != `{"title":"From the CLI"}` {
		t.Errorf("got %+v, want id %q with the CLI's data", ev, id)
	}

	for name, args := range map[string][]string{
		"wrong key":    {"publish", "--publish-key", "not-the-key-at-all", "--type", "x"},
		"bad user":     {"publish", "--user", "alice", "--type", "x"},
		"bad data":     {"publish", "--type", "x", "--data", "{oops"},
		"no type":      {"publish", "--user", user},
		"bad url":      {"publish", "--url", "ftp://x", "--type", "x"},
		"unknown flag": {"publish", "--nope"},
	} {
		out.Reset()
		err := run(t.Context(), args, getenv, &out, &out)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v, want a one-line error", name, err)
		}
		if out.Len() != 0 {
			t.Errorf("%s: printed %q, want nothing", name, out.String())
		}
	}
	if got, want := r.logs.String(), `"msg":"publish refused"`; !strings.Contains(got, want) {
		t.Errorf("server logs lack %s", want)
	}
}
