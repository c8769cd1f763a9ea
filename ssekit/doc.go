// Package ssekit pushes events from a Go backend to browsers and apps over
// Server-Sent Events.
//
// A Hub routes events to one user (every connection of that user), several
// users, a tenant (every connection of an organisation), the followers of a
// topic, one connection, or everyone. Each send is validated and encoded
// once; a Broker appends it to each channel it is addressed to — a user's
// channel, a tenant's, a topic's, everyone's — numbers it there and keeps
// each channel's own
// bounded history (the in-memory broker by default; Redis, or a Redis
// Cluster, for several nodes: see package redisbroker). The hub offers the
// same bytes to every connection that follows one of those channels,
// without blocking; each connection's writer drains its queue into one
// write per wake-up.
//
// Streams resume: a connection follows a set of channels, and the id of
// every event it receives is its position in each of them, so a browser
// reconnecting with Last-Event-ID gets every event of its channels it
// missed, once and in each channel's order, then live events, with no gap.
// One user's resume window never shrinks because other users get events.
// When a channel's history no longer reaches back that far, the client
// gets a "resync" event naming that channel instead, so the loss is
// announced, never silent, and its other channels replay as usual. An
// event appended to several of a connection's channels (its user's and a
// topic's) is written to it once. The memory broker delivers a publish
// whole; a broker that stores and delivers each channel's copy apart
// (Message.Also: redisbroker) has a stream write the first copy to arrive
// and remember the publish until its other copies have come, which only
// move the stream's position, each in its own channel's order; a replay
// tells a copy the connection it resumes already wrote by the publish's
// positions in all its channels, which the broker gives it (redisbroker
// keeps them in a record next to the copies). A copy whose channel lost
// history does not take the event from the others. Were a record missing
// (its node died between the copies and the record), a client resuming
// between two copies of that event could see it twice, never lose it. A
// connection that cannot keep up is disconnected (and resumes) rather
// than silently skipped.
//
// Serve the stream with Hub.Handler on any router, or mount the Echo module
// (NewModule) on a core.Kit as in the Quick Start. See the examples.
//
// # Concurrency
//
// The goroutines, the locks and their order, in one place. Every comment
// elsewhere about who runs what must agree with this.
//
// Goroutines a Hub owns, each stopped by Close or Shutdown, which waits
// for them:
//
//   - The waker (waker.go), when WriteDelay > 0: it wakes streams with
//     queued events in rounds.
//   - Each stream's writer: the request's goroutine (ServeStream returns
//     when the stream ends), parked on its follower's wake channel between
//     writes (stream.live). With DetachStreams, for HTTP/1.x, the hub
//     takes the connection over (detach.go). On Linux a detached stream
//     has no goroutine while it idles (eventStream): a goroutine writes
//     its opening and replay and returns; then a wake-up of the stream
//     (signal: an enqueue, the waker's round, its timer, the hub ending
//     it, a session recheck, the client's hang-up) starts a goroutine that
//     runs steps (stream.step: take the queue, write it, heartbeat,
//     rotate) and returns — never two at once, and a wake-up that comes
//     while one runs makes it step again. While the stream is busy (it
//     wrote events less than stepBusy ago) that goroutine stays, parked on
//     a channel of the stream's between steps, until a step comes later
//     than that (its timer's at the latest). An event that Publish
//     queues to an idle, quiet stream on a plain TCP socket is not handed
//     over at all: the publisher's goroutine runs that step itself once
//     the broker has released its lock (publisherWrites, for up to
//     maxHere streams per event; eventStream.stepHere), writing only what
//     the socket takes at once and leaving the rest, and anything but
//     writing events, to a goroutine started for it. Deliveries that come
//     on a broker's own goroutines (redisbroker) wake the stream instead.
//     One goroutine per hub, while it has detached streams, waits in
//     epoll_wait for their clients to hang up (hangups, eventloop_linux.go). Elsewhere, or for a connection
//     with no socket of its own (TLS), a detached stream has a goroutine
//     that writes it as the request's would, plus a second one blocked in
//     Read on it (watch, detach.go), which notices the client leaving. All
//     are counted in the hub's WaitGroup: a stream's count is held from
//     its registration until its OnDisconnect returns, and covers its
//     steps.
//   - Transient ones: the function timer of each stream's heartbeat and
//     rotation (it only marks the follower and signals it), Shutdown's
//     wait for the streams, and, without a PresenceStore broker and with
//     Config.OnPresence, the function timer of each user's pending offline
//     report (presence.go), which Shutdown stops and waits for.
//
// The app's hooks run on these goroutines, under no lock of the hub:
// OnConnect and OnDisconnect on the stream's (a stream served by
// wake-ups has its OnDisconnect on the goroutine that ended it, its last
// step's or its opening's); OnPresence under the
// presence's own lock (presence.mu, taken with no other lock held) or on
// the broker's presence goroutine.
//
// The broker's subscription calls the hub's deliver. The MemoryBroker
// starts no goroutine: deliver runs on the publisher's goroutine, inside
// Publish. redisbroker runs one goroutine per subscription (it keeps the
// channels subscribed) and one per Redis master it subscribes on (it
// reads that master's Pub/Sub connection and calls deliver), so deliver
// may run on several goroutines at once, one channel on one of them at a
// time; the broker stops them when the hub cancels its subscription.
//
// Locks, and what each guards:
//
//   - Hub.mu orders a stream's streams.Add against Shutdown's Wait.
//   - registry.mu (read-write) guards the indexes of followers (the
//     registered streams): all, by id, by channel, the user count and each
//     follower's slot. deliver holds it
//     for reading while it offers an event to the followers of its
//     channels.
//   - follower.mu guards one stream's queue and state: what the hub
//     enqueues (from deliver) and the writer takes; see the fields.
//   - waker.mu guards the waker's pending list.
//   - hangups.mu guards the hang-up watch's epoll set and its entries;
//     taken with no other lock held, and not held while a stream hears of
//     its client's hang-up. A detached stream's step state is atomic
//     (eventStream.state): waking it takes no lock, so signal may run
//     under registry.mu or a follower.mu, as it always has.
//   - MemoryBroker.mu guards its histories and subscribers (its cursors
//     have a lock of their own, as the hub's own cursor store does); it is
//     held while the subscribers (deliver) run, which is what keeps their
//     view in order. redisbroker's subscription lock guards its channel
//     and shard maps; each channel's deliveryMu is held while that
//     channel's events are read and delivered.
//
// The order: a broker's lock (MemoryBroker.mu, or a redisbroker channel's
// deliveryMu, then its subscription lock), then registry.mu, then a
// follower.mu, then waker.mu. Nothing takes them the other way: a stream's
// writer calls the broker (Follow, Head, Read) holding none of them, and
// ending a stream takes its follower.mu, then registry.mu, one after the
// other, not nested. No lock is held across a write to a socket, and
// deliver never blocks: it writes nothing itself, and the steps a
// publisher runs (stepHere) run after the broker's Publish has released
// its lock, take the follower's as a stream's writer does, write without
// waiting and save no cursor.
package ssekit
