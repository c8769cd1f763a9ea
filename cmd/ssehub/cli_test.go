package main

import (
	"bytes"
	"strings"
	"testing"
)

// cliSetup starts a server and a user's stream on it, past its connected
// event, and returns the environment the CLI finds the server in.
func cliSetup(t *testing.T) (r *running, user string, s *stream, getenv func(string) string) {
	t.Helper()
	r = startRun(t, nil, testEnv)
	user = newUser()
	s = openStream(t, r.url+"/sse/stream", bearerAuth(token(t, user)))
	s.nextOf(t, "connected")
	env := map[string]string{"SSEHUB_URL": r.url, "SSEHUB_PUBLISH_KEY": testKey}
	return r, user, s, func(k string) string { return env[k] }
}

// TestPublishCommand runs `ssehub publish` against an in-process server
// and checks that the event it prints the id of reaches the user.
func TestPublishCommand(t *testing.T) {
	t.Parallel()
	r, user, s, getenv := cliSetup(t)
	var out bytes.Buffer
	err := run(t.Context(), []string{"publish", "--user", user, "--type", "notification", "--data", `{"title":"From the CLI"}`}, getenv, &out, &out)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	id := strings.TrimSpace(out.String())
	ev := s.nextOf(t, "notification")
	if positionIn(t, ev.ID, "u") != id || string(ev.Data) != `{"title":"From the CLI"}` {
		t.Errorf("got %+v, want the CLI's data at the printed id %q in the user's channel", ev, id)
	}

	for name, args := range map[string][]string{
		"wrong key":    {"publish", "--publish-key", "not-the-key-at-all", "--all", "--type", "x"},
		"bad user":     {"publish", "--user", "alice", "--type", "x"},
		"bad data":     {"publish", "--all", "--type", "x", "--data", "{oops"},
		"no type":      {"publish", "--user", user},
		"bad url":      {"publish", "--url", "ftp://x", "--all", "--type", "x"},
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

// TestPublishCommandAddressees checks that the CLI sends to everyone only
// with --all, and that an empty --user or --client, or none of the three,
// is an error before anything is sent: a script whose variable came out
// empty must not broadcast.
func TestPublishCommandAddressees(t *testing.T) {
	t.Parallel()
	r, user, s, getenv := cliSetup(t)

	var out bytes.Buffer
	if err := run(t.Context(), []string{"publish", "--all", "--type", "everyone"}, getenv, &out, &out); err != nil {
		t.Fatalf("publish --all: %v", err)
	}
	if ev := s.nextOf(t, "everyone"); positionIn(t, ev.ID, "a") != strings.TrimSpace(out.String()) {
		t.Errorf("got %+v, want it at the printed id %q in the broadcast channel", ev, out.String())
	}

	cases := []refusedCommand{
		{"no addressee", []string{"--type", "x"}, []string{"--user", "--client", "--all"}},
		{"empty user", []string{"--user", "", "--type", "x"}, []string{"--user"}},
		{"blank user", []string{"--user", " ", "--type", "x"}, []string{"--user"}},
		{"empty user in a list", []string{"--user", user + ",," + user, "--type", "x"}, []string{"--user"}},
		{"trailing comma", []string{"--user", user + ",", "--type", "x"}, []string{"--user"}},
		{"empty client", []string{"--client", "", "--type", "x"}, []string{"--client"}},
		{"empty user beside --all", []string{"--all", "--user", "", "--type", "x"}, []string{"--user"}},
		{"all with user", []string{"--all", "--user", user, "--type", "x"}, []string{"--all", "--user"}},
		{"all with client", []string{"--all", "--client", "c-1", "--type", "x"}, []string{"--all", "--client"}},
	}
	refusedCommands(t, r.url, getenv, cases)
}

// refusedCommand is a publish command that must fail before it sends
// anything: its name, its arguments after "publish", and what its error
// must name.
type refusedCommand struct {
	name string
	args []string
	want []string
}

// refusedCommands runs each command against the hub at url and checks
// that it fails with a one-line error naming what it must, prints nothing,
// and that no event of their type "x" was published.
func refusedCommands(t *testing.T, url string, getenv func(string) string, cases []refusedCommand) {
	t.Helper()
	var out bytes.Buffer
	for _, tc := range cases {
		out.Reset()
		err := run(t.Context(), append([]string{"publish"}, tc.args...), getenv, &out, &out)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v, want a one-line error", tc.name, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not name %s", tc.name, err, w)
			}
		}
		if out.Len() != 0 {
			t.Errorf("%s: printed %q, want nothing", tc.name, out.String())
		}
	}
	if got := metricValue(t, url, `ssekit_events_published_total{type="x"}`); got != 0 {
		t.Errorf("%v events of type x published, want none", got)
	}
}
