// Package sse pushes events from a Go backend to browsers and apps over
// Server-Sent Events.
//
// A Hub routes events to one user (every connection of that user), several
// users, one connection, or everyone. Each send is validated and encoded
// once; a Broker numbers it, keeps it in a bounded history and hands it to
// the hub of every node (the in-memory broker by default; Redis Streams for
// a cluster, see package redisbroker). The hub offers the same bytes to each
// addressed connection without blocking; each connection's own goroutine
// drains its queue into one write and one flush.
//
// Streams resume: a browser reconnecting with Last-Event-ID gets every event
// it missed, once and in order, then live events, with no gap; when the
// history no longer reaches back that far it gets a "resync" event instead,
// so the loss is announced, never silent. A connection that cannot keep up
// is disconnected (and resumes) rather than silently skipped.
//
// Serve the stream with Hub.Handler on any router, or mount the Echo module
// (NewModule) on a core.Kit as in the Quick Start. See the examples.
package sse
