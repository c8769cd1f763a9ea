// Command ssehub is the standalone Server-Sent Events hub: browsers and
// apps subscribe with a JWT, any backend publishes over HTTP. Run
// `ssehub --help` for its settings, each a flag and an SSEHUB_ variable.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling, so that a
		// second Ctrl-C ends a drain that takes too long.
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ssehub:", err)
		os.Exit(1)
	}
}
