//go:build !linux

package ssekit

import "sync"

// hangups is, on Linux, the hub's epoll watch of its detached streams'
// connections for the client's hang-up (eventloop_linux.go). Elsewhere
// there is none: a detached stream keeps its two goroutines, the writer
// and watch's reader.
type hangups struct{}

// watch reports that the connection cannot be watched here.
func (*hangups) watch(*eventStream, *sync.WaitGroup) bool { return false }

// forget has nothing to forget.
func (*hangups) forget(*eventStream) {}

// tryWriter would write to a socket without waiting; no stream has one
// here, since none is served by wake-ups (eventStream.try is nil).
type tryWriter struct{}

// write writes nothing: the stream's goroutine writes it all.
func (*tryWriter) write([]byte) (int, error) { return 0, nil }
