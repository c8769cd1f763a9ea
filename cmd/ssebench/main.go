// Command ssebench is a load generator for Server-Sent Events servers. It
// opens many streams, publishes numbered, timestamped events through the
// server's HTTP publish API (or a command, or the server's own in-process
// publisher), and reports what arrived: loss, duplicates, reordering,
// deliveries per second, publish→receive latency, and, given the server's
// pid, its memory per idle connection and CPU per delivery. Events go to
// everyone (broadcast) or, with -targeted, each to one random connected
// user, and then every stream also checks that it is the addressee
// (misdelivery) of what it gets.
//
//	ssebench -url 'http://127.0.0.1:8080/stream?user={user}' -conns 10000 \
//	    -publish-url http://127.0.0.1:8080/publish -rate 50 -count 200 \
//	    -pid $(pgrep -n myserver) -json out.json
//
// Above -per-proc connections it re-runs itself as worker processes (each
// process has a file descriptor limit), and it spreads connections over
// several loopback source addresses so that ephemeral ports never run out.
// It reports its own CPU, since it shares the machine with the server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if os.Getenv(workerEnv) != "" {
		err = workerMain(ctx, os.Stdin, os.Stdout)
	} else {
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "ssebench:", err)
		os.Exit(1)
	}
}
