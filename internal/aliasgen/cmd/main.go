// Command aliasgen writes the root package's aliases of package ssekit;
// see package aliasgen.
package main

import (
	"fmt"
	"os"

	"github.com/ssekit/sse/internal/aliasgen"
)

func main() {
	if err := aliasgen.Main(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
