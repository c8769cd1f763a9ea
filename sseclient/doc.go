// Package sseclient reads Server-Sent Events streams from Go: a Decoder
// that parses the wire format exactly as the WHATWG HTML standard says, and
// a Client that subscribes to a stream and keeps it going the way a
// browser's EventSource does, with a few things done better for services.
//
// Client.Subscribe (or the package-level Subscribe) hands every event to a
// function; Client.Events offers the same as an iterator. After a dropped
// connection the client reconnects with the Last-Event-ID of the last event
// that had one, so a server that keeps history (as the ssekit hub does)
// resumes the stream without a gap. The delay between attempts starts at
// the server's retry field and grows exponentially, with full jitter, up to
// a cap; Retry-After is honoured; 204 ends the subscription and a status
// that will not change (401, 403, 404, …) or a wrong Content-Type is
// returned to the caller rather than retried forever. OnStateChange tells
// an application when to show "reconnecting…". Client.Topics asks the
// server for topics (?topic=), on every reconnection too.
//
// This package does not import the hub (github.com/ssekit/sse): it speaks
// the wire protocol only, and reads any SSE server.
package sseclient
