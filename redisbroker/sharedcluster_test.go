package redisbroker_test

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/ssekit/sse/internal/rediscluster"
	"github.com/ssekit/sse/internal/ssetest"
)

// The package's Redis Cluster: three masters on loopback ports, started
// at the first test that needs one and stopped by TestMain, shared by the
// tests (each under its own prefix).
var (
	clusterOnce sync.Once
	cluster     *rediscluster.Cluster
	clusterDir  string
	clusterErr  error
)

// sharedCluster returns the package's Redis Cluster, starting it once, or
// skips the test (fails it under SSEKIT_REQUIRE_SERVICES=1) when it
// cannot start.
func sharedCluster(t testing.TB) *rediscluster.Cluster {
	t.Helper()
	clusterOnce.Do(func() {
		if _, err := exec.LookPath("redis-server"); err != nil {
			clusterErr = err
			return
		}
		clusterDir, clusterErr = os.MkdirTemp("", "ssekit-redisbroker-cluster-")
		if clusterErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cluster, clusterErr = rediscluster.Start(ctx, rediscluster.Options{Dir: clusterDir, Masters: 3})
	})
	if clusterErr != nil {
		ssetest.ServiceMissing(t, "a Redis Cluster of local redis-servers: %v", clusterErr)
	}
	return cluster
}

// stopSharedCluster stops the package's cluster, if it started.
func stopSharedCluster() {
	if cluster != nil {
		_ = cluster.Stop()
	}
	if clusterDir != "" {
		_ = os.RemoveAll(clusterDir)
	}
}
