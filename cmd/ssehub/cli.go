package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ssekit/sse/ssekit"
)

// listFlag is a repeatable flag whose values may also be comma-separated.
// An empty value anywhere ("", " ", "a,,b", "a,") is an error, never
// dropped: a script whose variable came out empty (--user "$ID") must
// fail, not send to fewer people than it meant.
type listFlag []string

// String returns the values as one comma-separated list.
func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Set adds the comma-separated values of s.
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			return errors.New("an empty value (did a variable come out empty?): each must name someone")
		}
		*l = append(*l, v)
	}
	return nil
}

// cliEnv are the flags of the publish command that its environment may
// set: the same variables as the server's, so that one environment serves
// both. The event itself comes from flags only.
var cliEnv = map[string]bool{"url": true, "prefix": true, "publish-key": true}

// publishCommand is `ssehub publish`: a client of POST <prefix>/publish,
// so that a shell script or a cron job publishes without writing HTTP.
// It prints the publish's id on stdout (not the ids subscribers see, which
// are each connection's position in its channels). With
// --idempotency-key, a run that repeats an earlier one within the hub's
// window prints that publish's id all the same, and says on stderr that
// nothing was sent again: stdout is the id either way, for the script
// that reads it.
func publishCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ssehub publish", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	hubURL := fs.String("url", "http://localhost:8080", "base URL of the hub")
	prefix := fs.String("prefix", "/sse", "route prefix of the hub")
	key := fs.String("publish-key", "", "the hub's publish key (required)")
	typ := fs.String("type", "", "event type (required), e.g. notification")
	data := fs.String("data", "null", "event data, any JSON value")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the hub")
	var users, clients, topics listFlag
	var tenant string
	fs.Var(&users, "user", "user uuid to send to; repeat or comma-separate for several")
	fs.Var(&clients, "client", "client id (from a connected event) to send to; repeatable")
	fs.Func("tenant", "tenant id to send to: every stream of that tenant", func(s string) error {
		s = strings.TrimSpace(s) // as listFlag does
		switch {
		case s == "":
			return errors.New("an empty value (did a variable come out empty?): it must name a tenant")
		case tenant != "":
			return errors.New("given twice: a publish goes to one tenant")
		}
		tenant = s
		return nil
	})
	fs.Var(&topics, "topic", "topic to send to: every stream that follows it; repeat or comma-separate for several")
	all := fs.Bool("all", false, "send to everyone; excludes --user, --client, --tenant and --topic")
	batch := fs.String("batch", "", "publish the events of this file (- for stdin), one JSON publish body per line (NDJSON, with an optional \"idempotency_key\"), in batches of up to 1000; prints a JSON result per line; excludes the event flags")
	var idemKey string
	fs.Func("idempotency-key", "a key naming this publish (Idempotency-Key), 1 to 255 bytes of visible ASCII: run again with the same key after any failure, and the hub stores the publish once", func(s string) error {
		if s == "" {
			return errors.New("an empty value (did a variable come out empty?): a key names the publish")
		}
		if err := ssekit.CheckKey(s); err != nil {
			return fmt.Errorf("%d bytes: want 1 to %d bytes of visible ASCII without spaces, such as a UUID", len(s), ssekit.MaxKeyLen)
		}
		idemKey = s
		return nil
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, "Usage: ssehub publish --type TYPE (--user UUID… | --client ID… | --tenant ID | --topic NAME… | --all) [--data JSON] [--idempotency-key KEY] [flags]\n       ssehub publish --batch FILE|- [flags]\n\nPublishes one event through a running hub and prints the publish's id. --user, --client, --tenant\nand --topic may be combined: the event reaches each stream that any of them names, once.\nWith --idempotency-key, a run that repeats an earlier one within the hub's --idempotency-window\nprints the earlier publish's id, sends nothing, and says \"replayed\" on stderr.\n\nWith --batch, each line of the file is one publish body, as POST <prefix>/publish takes it\n({\"users\":[…],\"type\":…,\"data\":…}, and \"idempotency_key\" for a retry-safe one); the events go\nin batches of up to 1000 per request, and stdout has one JSON result per line, in order:\n{\"line\":N,\"id\":…} or {\"line\":N,\"status\":…,\"error\":…,\"message\":…}. It fails if any failed.\n\nFlags:\n")
			printFlags(stdout, fs, func(name string) bool { return cliEnv[name] })
			return nil
		}
		return cliFlagError(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("publish: unexpected argument %q", fs.Arg(0))
	}
	// Flags win over the environment.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, p := range map[string]*string{"url": hubURL, "prefix": prefix, "publish-key": key} {
		if v := getenv(envName(name)); v != "" && !set[name] && cliEnv[name] {
			*p = v
		}
	}
	some := len(users) > 0 || len(clients) > 0 || tenant != "" || len(topics) > 0
	if *batch != "" {
		for _, name := range []string{"type", "data", "user", "client", "tenant", "topic", "all", "idempotency-key"} {
			if set[name] {
				return fmt.Errorf("publish: --batch takes the events from its file: leave out --%s", name)
			}
		}
	}
	switch {
	case *batch != "" && *key == "":
		return errors.New("publish: --publish-key (SSEHUB_PUBLISH_KEY) is required")
	case *batch != "" && *timeout <= 0:
		return errors.New("publish: --timeout must be positive")
	case *batch != "":
	case !*all && !some:
		// Everyone is only ever asked for: a forgotten --user must not
		// become a broadcast.
		return errors.New("publish: name the addressees: --user, --client, --tenant, --topic, or --all for everyone")
	case *all && some:
		return errors.New("publish: --all sends to everyone: leave out --user, --client, --tenant and --topic")
	case *key == "":
		return errors.New("publish: --publish-key (SSEHUB_PUBLISH_KEY) is required")
	case *typ == "":
		return errors.New("publish: --type is required")
	case !json.Valid([]byte(*data)):
		return fmt.Errorf("publish: --data %q is not valid JSON", *data)
	case *timeout <= 0:
		return errors.New("publish: --timeout must be positive")
	}
	u, err := url.Parse(*hubURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("publish: --url %q is not an http(s) URL", *hubURL)
	}
	pub := &publisher{
		endpoint: strings.TrimSuffix(u.String(), "/") + strings.TrimSuffix(*prefix, "/") + "/publish",
		key:      *key,
		timeout:  *timeout,
		// A client of its own, so that its connection is closed when done.
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	}
	if *batch != "" {
		return pub.batchFile(ctx, *batch, stdin, stdout)
	}
	body, _ := json.Marshal(publishRequest{All: *all, Users: users, Clients: clients, Tenant: tenant, Topics: topics, Type: *typ, Data: json.RawMessage(*data)})
	raw, err := pub.post(ctx, body, idemKey)
	if err != nil {
		return err
	}
	var ok publishResponse
	if err := json.Unmarshal(raw, &ok); err != nil || ok.ID == "" {
		return fmt.Errorf("publish: unexpected answer %.200q", raw)
	}
	fmt.Fprintln(stdout, ok.ID)
	if ok.Replayed {
		fmt.Fprintf(stderr, "ssehub publish: replayed: the hub had stored a publish with this --idempotency-key already; %s is its id, and nothing was sent again\n", ok.ID)
	}
	return nil
}

// cliFlagError rewrites the flag package's error for a bad value
// ("invalid value "" for flag -user: …") in the form of the command's
// other errors, which name the flag as it is typed: --user "": why.
func cliFlagError(err error) error {
	m := flagErrRe.FindStringSubmatch(err.Error())
	if m == nil {
		return fmt.Errorf("publish: %w", err) // an unknown flag, a missing value: already one line
	}
	return fmt.Errorf("publish: --%s \"%s\": %s", m[2], m[1], strings.TrimPrefix(err.Error(), m[0]))
}
