//go:build !unix

package ssekit_test

// cpuTime is 0 where getrusage is not available: the benchmarks' CPU per
// delivery then reads 0.
func cpuTime() int64 { return 0 }
