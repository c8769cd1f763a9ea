package redisbroker_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain stops the package's Redis Cluster after the tests, then checks
// that no goroutine outlived them.
func TestMain(m *testing.M) {
	code := m.Run()
	stopSharedCluster()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
