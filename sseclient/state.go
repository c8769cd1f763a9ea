package sseclient

import (
	"strconv"
	"time"
)

// State is a subscription's connection state, as OnStateChange reports it.
type State int

const (
	// StateConnected: the server answered 200 text/event-stream.
	StateConnected State = iota + 1
	// StateReconnecting: the connection failed or ended; the client waits
	// Delay before the next attempt.
	StateReconnecting
	// StateResync: the server sent a resync event (the ssekit hub's way of
	// saying that the events since Last-Event-ID are gone and the
	// application should refetch its state). The event itself follows.
	StateResync
)

func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateResync:
		return "resync"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// StateChange is one change of a subscription's state.
type StateChange struct {
	State State

	// LastEventID is the id the connection resumed from (StateConnected),
	// or will resume from (StateReconnecting); "" for a fresh stream.
	LastEventID string

	// Resumed is set with StateConnected when the request carried a
	// Last-Event-ID, asking the server to resume. A server that could not
	// follows with a resync event (StateResync).
	Resumed bool

	// Delay is how long the client waits before reconnecting, and Err why
	// it reconnects (StateReconnecting). Attempt counts the attempts since
	// the last connection that delivered an event, from 1.
	Delay   time.Duration
	Err     error
	Attempt int
}

// ResyncType is the event type that makes a subscription report
// StateResync.
const ResyncType = "resync"

// TopicParam is the query parameter that Client.Topics are sent in, once
// per topic, as the ssekit hub reads them.
const TopicParam = "topic"
