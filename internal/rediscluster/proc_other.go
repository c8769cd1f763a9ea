//go:build !linux

package rediscluster

import "syscall"

// sysProcAttr returns no attributes: outside Linux there is no
// parent-death signal, and a program that dies without calling Stop
// leaves its nodes running.
func sysProcAttr() *syscall.SysProcAttr { return nil }
