package ssetest

import (
	"os"
	"testing"
)

// RedisAddr is the address of the shared Redis the tests use:
// SSEKIT_REDIS_ADDR, or 127.0.0.1:6379. Tests never flush it: each keeps
// to a key prefix of its own.
func RedisAddr() string {
	if a := os.Getenv("SSEKIT_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// ServiceMissing skips t, loudly, because a service it needs is not
// there, or fails it when SSEKIT_REQUIRE_SERVICES=1 says every service
// must be. The message names the service and how to provide it.
func ServiceMissing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("SSEKIT_REQUIRE_SERVICES") == "1" {
		t.Fatalf("SERVICE MISSING (SSEKIT_REQUIRE_SERVICES=1): "+format, args...)
	}
	t.Skipf("SKIPPED, SERVICE MISSING (SSEKIT_REQUIRE_SERVICES=1 fails instead): "+format, args...)
}

// RedisDown is ServiceMissing for the shared Redis, which answered err.
func RedisDown(t testing.TB, err error) {
	t.Helper()
	ServiceMissing(t, "Redis at %s (SSEKIT_REDIS_ADDR) does not answer: %v", RedisAddr(), err)
}
