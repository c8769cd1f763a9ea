package ssekit

import "errors"

// Errors returned by the hub and its brokers. Test for them with errors.Is:
// the hub wraps them with the detail of what was wrong.
var (
	// ErrInvalidEvent reports an event that cannot be written on the wire:
	// a Type or ID with CR, LF or NUL, an ID set by the caller, or Data that
	// encoding/json cannot marshal. Nothing was published.
	ErrInvalidEvent = errors.New("sse: invalid event")

	// ErrEventTooLarge reports an event whose encoded data is over
	// Config.MaxEventSize. Nothing was published.
	ErrEventTooLarge = errors.New("sse: event too large")

	// ErrInvalidTarget reports a send addressed to nobody: no addressee, an
	// empty (non-nil) list, or an empty user or client id; everyone is
	// only Target.All. Nothing was published.
	ErrInvalidTarget = errors.New("sse: invalid target")

	// ErrTooManyRecipients reports a send addressed to more users and
	// clients than Config.MaxRecipients. Nothing was published.
	ErrTooManyRecipients = errors.New("sse: too many recipients")

	// ErrHubClosed is returned by every send after Close or Shutdown.
	ErrHubClosed = errors.New("sse: hub closed")

	// ErrUnknownID is returned by Broker.Replay when the id it is asked to
	// resume after is not (or no longer) in the history: expired, trimmed,
	// from another broker, never issued, or malformed. The hub answers it with
	// a resync event.
	ErrUnknownID = errors.New("sse: event id not in history")

	// ErrInvalidConfig reports a Config the hub cannot run with.
	ErrInvalidConfig = errors.New("sse: invalid config")
)
