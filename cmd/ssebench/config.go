package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// Config is one benchmark run.
type Config struct {
	Label           string
	URL             string
	Headers         []string
	Conns           int
	Users           int
	Src             []string
	PerProc         int
	DialConcurrency int
	ConnectTimeout  time.Duration
	IdleWait        time.Duration
	Publish         publishConfig
	Drain           time.Duration
	PID             int
	JWTSecret       string
	JWTClaims       string
	JSONOut         string
	MaxDuration     time.Duration
	WaitReady       time.Duration
	AllowRemote     bool
}

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// parseFlags reads the command line into a Config.
func parseFlags(args []string, stderr io.Writer) (Config, error) {
	var c Config
	var headers, pubHeaders listFlag
	var src string
	fs := flag.NewFlagSet("ssebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ssebench -url URL [-conns N] [-publish-url URL -rate R -count N | -duration D] [-pid PID] [-json FILE]")
		fmt.Fprint(stderr, `
Broadcast (the default): every event goes to every connection.
Targeted (-targeted): every event goes to one random connected user, named
in the publish URL or body by {user}; each stream checks that it is the
addressee and, by the end, that none of its user's events is missing or
repeated. E.g. ssekit's peerserver and ssehub:
  -targeted -publish-url 'http://127.0.0.1:8090/publish?user={user}'
  -targeted -publish-url http://127.0.0.1:8080/sse/publish \
      -publish-body '{"users":["{user}"],"type":"bench","data":{payload}}'
Batches (-batch N): N events per request, their bodies joined by commas
into -batch-body's {events}, e.g. Centrifugo's /api/batch:
  -batch 16 -batch-body '{"commands":[{events}]}' \
      -publish-body '{"publish":{"channel":"#{user}","data":{payload}}}'
In-process (-publish-control URL, with -targeted): the server publishes
from inside its own process, paced by the same -rate, -count, -duration
and -concurrency (peerserver's POST /control/publish).

`)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.Label, "label", "", "a name for this run, copied into the report")
	fs.StringVar(&c.URL, "url", "", "stream URL template; {i} is the connection index, {user} its user id (UUID form), {token} an HS256 JWT for the user (see -jwt-secret)")
	fs.Var(&headers, "header", "stream request header template, \"Name: value\" (repeatable), e.g. 'Authorization: Bearer {token}'")
	fs.IntVar(&c.Conns, "conns", 100, "connections to open")
	fs.IntVar(&c.Users, "users", 0, "distinct users over the connections (0: one per connection)")
	fs.StringVar(&src, "src", "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5", "comma-separated loopback source addresses, used in turn (empty: let the kernel choose)")
	fs.IntVar(&c.PerProc, "per-proc", 18000, "most connections per process; more are split over worker processes")
	fs.IntVar(&c.DialConcurrency, "dial-concurrency", 200, "connection attempts in flight per process")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", 15*time.Second, "bound on one connection's dial and response head")
	fs.DurationVar(&c.IdleWait, "idle-wait", 2*time.Second, "settle time after connecting, before the idle RSS reading")
	fs.StringVar(&c.Publish.URL, "publish-url", "", "publish API URL (POST), a template ({user}: a targeted event's addressee); without it, -publish-cmd and -publish-control, or without -count and -duration, nothing is published (an idle run)")
	fs.StringVar(&c.Publish.Body, "publish-body", "{payload}", "publish body template; {payload} is the event's JSON, {user} a targeted event's addressee, e.g. '{\"all\":true,\"type\":\"bench\",\"data\":{payload}}' for ssehub")
	fs.Var(&pubHeaders, "publish-header", "publish request header, \"Name: value\" (repeatable)")
	fs.StringVar(&c.Publish.FailOn, "publish-fail-on", "", "a 2xx publish answer whose body contains this string failed (Centrifugo answers errors with 200 and {\"error\":…})")
	fs.BoolVar(&c.Publish.Targeted, "targeted", false, "address each event to one random connected user instead of everyone, and check every delivery against its addressee")
	fs.IntVar(&c.Publish.Batch, "batch", 1, "events per publish request; above 1, their bodies are joined into -batch-body")
	fs.StringVar(&c.Publish.BatchBody, "batch-body", "[{events}]", "batch request template; {events} is the events' bodies (-publish-body each) joined by commas")
	fs.StringVar(&c.Publish.Control, "publish-control", "", "instead of publishing, have the server publish from inside its process: POST the plan to this URL (peerserver's /control/publish; needs -targeted)")
	fs.StringVar(&c.Publish.Cmd, "publish-cmd", "", "instead of HTTP, a shell command per publisher that reads one body per line on stdin and answers one line per publish on stdout (\"ok\", or \"error …\")")
	fs.Float64Var(&c.Publish.Rate, "rate", 0, "events per second, all publishers together (0: as fast as accepted)")
	fs.IntVar(&c.Publish.Count, "count", 0, "events to publish (0: until -duration)")
	fs.DurationVar(&c.Publish.Duration, "duration", 0, "publish for this long (0: until -count)")
	fs.IntVar(&c.Publish.Concurrency, "concurrency", 1, "concurrent publishers")
	fs.IntVar(&c.Publish.PayloadSize, "payload-size", 0, "pad each event's JSON to this many bytes")
	fs.DurationVar(&c.Publish.Timeout, "publish-timeout", 30*time.Second, "bound on one publish")
	fs.DurationVar(&c.Drain, "drain", 10*time.Second, "after publishing, how long to wait for events still on their way")
	fs.IntVar(&c.PID, "pid", 0, "server process id, for its RSS and CPU from /proc")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HS256 secret for {token}")
	fs.StringVar(&c.JWTClaims, "jwt-claims", "", "extra claims of {token}, JSON members, e.g. '\"channels\":[\"bench\"]' (Centrifugo's server-side subscriptions)")
	fs.StringVar(&c.JSONOut, "json", "", "write the JSON report to this file (\"-\": stdout, with the summary on stderr)")
	fs.DurationVar(&c.MaxDuration, "max-duration", 10*time.Minute, "hard bound on the whole run")
	fs.DurationVar(&c.WaitReady, "wait-ready", 10*time.Second, "wait this long for the server to accept connections")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow non-loopback targets")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.Headers, c.Publish.Headers = headers, pubHeaders
	if src != "" {
		c.Src = strings.Split(src, ",")
	}
	return c, c.check()
}

// check validates c and its targets.
func (c *Config) check() error {
	switch {
	case c.URL == "":
		return fmt.Errorf("-url is required")
	case c.Conns < 1:
		return fmt.Errorf("-conns must be at least 1")
	case c.PerProc < 1:
		return fmt.Errorf("-per-proc must be at least 1")
	case c.Publish.Batch < 1:
		return fmt.Errorf("-batch must be at least 1")
	case c.Publish.Batch > 1 && !parseTemplate(c.Publish.BatchBody).has("events"):
		return fmt.Errorf("-batch-body must hold {events}")
	case c.Publish.Batch > 1 && parseTemplate(c.Publish.URL).has("user"):
		return fmt.Errorf("-batch: a batch has many addressees, so -publish-url cannot name one ({user})")
	case c.Publish.Batch > 1 && c.Publish.Cmd != "":
		return fmt.Errorf("-batch works over HTTP only, not with -publish-cmd")
	case c.Publish.Control != "" && !c.Publish.Targeted:
		return fmt.Errorf("-publish-control needs -targeted: the in-process publisher addresses users")
	case c.Publish.Control != "" && c.Publish.Batch > 1:
		return fmt.Errorf("-publish-control publishes one event per call: no -batch")
	case c.Publish.Targeted && c.Publish.Cmd == "" && c.Publish.Control == "" &&
		!parseTemplate(c.Publish.URL).has("user") && !parseTemplate(c.Publish.Body).has("user"):
		return fmt.Errorf("-targeted: name the addressee with {user} in -publish-url or -publish-body")
	}
	if c.Users <= 0 {
		c.Users = c.Conns
	}
	for _, raw := range []string{c.URL, c.Publish.URL, c.Publish.Control} {
		if raw == "" || c.AllowRemote {
			continue
		}
		u, err := url.Parse(strings.NewReplacer("{i}", "0", "{user}", "u", "{token}", "t").Replace(raw))
		if err != nil {
			return err
		}
		ips, err := net.LookupIP(u.Hostname())
		if err != nil || len(ips) == 0 || !ips[0].IsLoopback() {
			return fmt.Errorf("%s is not a loopback address (use -allow-remote)", u.Host)
		}
	}
	if c.AllowRemote && len(c.Src) > 0 {
		// Loopback source addresses cannot reach another host.
		c.Src = nil
	}
	return nil
}

// publishing reports whether the run publishes events: it needs somewhere
// to publish and a -count or -duration; without them the run is an idle one.
func (c *Config) publishing() bool {
	return (c.Publish.URL != "" || c.Publish.Cmd != "" || c.Publish.Control != "") && (c.Publish.Count > 0 || c.Publish.Duration > 0)
}
