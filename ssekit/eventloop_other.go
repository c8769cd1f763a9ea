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
