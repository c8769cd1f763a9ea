package rediscluster

import "syscall"

// sysProcAttr has the kernel kill a node when the thread that started it
// exits. The Go runtime ends a thread only when the program ends (or when
// a goroutine locked to the thread exits), so a test binary that panics
// or times out leaves no redis-server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
