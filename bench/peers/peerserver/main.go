// Command peerserver serves one SSE library behind the benchmark's common
// interface, so that ssebench can compare them like for like:
//
//	GET  /stream?user=<id>   an event stream for that user
//	POST /publish            body: the event's JSON data, broadcast to everyone
//	POST /publish?user=<id>  the same, to that user's streams only
//	POST /control/publish    the in-process publisher: publishes targeted
//	                         events from inside this process, as ssebench's
//	                         -publish-control plans them (control.go)
//
// Every event is published with type "bench". -impl picks the library:
// ssekit, naive (a seed-style hub), r3labs, tmaxmax, alexandrevicenzi, and
// floor, which delivers nothing: what net/http alone costs per publish.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// adapter is one library behind the common interface.
type adapter interface {
	// stream serves one event stream for user until the client goes or the
	// adapter closes.
	stream(w http.ResponseWriter, r *http.Request, user string)
	// publish sends data (JSON) to user's streams, or to all when user is "".
	publish(ctx context.Context, user string, data []byte) error
	// close ends every stream.
	close()
}

// errUntargeted is returned by libraries that cannot address a user.
var errUntargeted = errors.New("this library cannot address one user and broadcast on the same streams")

// params are the settings shared by every adapter that has them.
type params struct {
	buffer    int           // per-connection queue, where the library has one
	heartbeat time.Duration // where the library has one
	drop      bool          // ssekit: drop on a full buffer instead of ending the stream
	// writeDelay is ssekit's Config.WriteDelay: 0 its default, negative off.
	writeDelay time.Duration
	detach     bool // ssekit's Config.DetachStreams
	// perUser is r3labs's targeted set-up: a connection subscribes to its
	// user's stream instead of the shared one (an r3labs connection holds
	// one stream, so it cannot have both).
	perUser bool
}

var adapters = map[string]func(params) (adapter, error){
	"ssekit":           newSSEKit,
	"naive":            newNaive,
	"r3labs":           newR3labs,
	"tmaxmax":          newTmaxmax,
	"alexandrevicenzi": newAlexandrevicenzi,
	"floor":            newFloor,
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "peerserver:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("peerserver", flag.ContinueOnError)
	impl := fs.String("impl", "ssekit", "library: ssekit, naive, r3labs, tmaxmax, alexandrevicenzi, floor (delivers nothing)")
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	var p params
	fs.IntVar(&p.buffer, "buffer", 10, "per-connection buffer, where the library has one (the seed's default: 10)")
	fs.DurationVar(&p.heartbeat, "heartbeat", 30*time.Second, "heartbeat interval, where the library has one")
	fs.DurationVar(&p.writeDelay, "write-delay", 0, "ssekit's WriteDelay: 0 for its default, negative to wake every stream per event")
	fs.BoolVar(&p.detach, "detach", false, "ssekit's DetachStreams: serve HTTP/1.x streams off net/http")
	fs.BoolVar(&p.perUser, "per-user-streams", false, "r3labs: each connection subscribes to its user's stream, not the shared \"all\" (targeted runs; broadcast then answers 501)")
	overflow := fs.String("overflow", "disconnect", "ssekit's overflow policy: disconnect (its default) or drop")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060)")
	lifetime := fs.Duration("lifetime", 15*time.Minute, "exit after this long, whatever happens")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch *overflow {
	case "disconnect":
	case "drop":
		p.drop = true
	default:
		return fmt.Errorf("unknown -overflow %q", *overflow)
	}
	if *pprofAddr != "" {
		go servePprof(*pprofAddr)
	}
	mk, ok := adapters[*impl]
	if !ok {
		return fmt.Errorf("unknown -impl %q", *impl)
	}
	a, err := mk(p)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		a.stream(w, r, r.URL.Query().Get("user"))
	})
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err == nil {
			err = a.publish(r.Context(), r.URL.Query().Get("user"), data)
		}
		switch {
		case errors.Is(err, errUntargeted):
			http.Error(w, err.Error(), http.StatusNotImplemented)
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	mux.HandleFunc("POST /control/publish", controlHandler(a))
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	// Streams never end by themselves: end them before Shutdown waits.
	srv.RegisterOnShutdown(a.close)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *lifetime)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("peerserver: %s on %s, pid %d", *impl, *addr, os.Getpid())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Some libraries do not end their streams on request: do not wait.
		return srv.Close()
	}
	return nil
}

// startStream writes the stream's status and headers at once: some
// libraries send nothing until the first event, and a client cannot tell
// such a stream from a hung server.
func startStream(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_ = http.NewResponseController(w).Flush()
}
