// Package server is roomcast's gRPC adapter: it serves roomcast.v1.BrokerService
// over a broker, with health, reflection, keepalive enforcement, metrics and
// a graceful shutdown that ends subscriber streams so their clients
// reconnect elsewhere.
//
// # Delivery
//
// Each Subscribe stream is a session (subscribe.go). Its turns (commands,
// then one batch of messages) run on its client connection's writer
// goroutine (writer.go), which serves the connection's ready sessions
// (conn.go); a session's scheduling between them is the small state machine
// in schedule.go, and what one turn does is in turn.go. The stream's
// handler goroutine reads its commands (selfread.go): it is the only
// goroutine an idle stream has.
//
// A message reaches a stream this way: Publish (publish.go) hands it to the
// broker, which sequences it and encodes it once (see package broker); the
// broker wakes the parked sessions of its room; each woken session's turn
// collects, as one frame of buffers shared with every other subscriber, what
// its rooms hold past its cursors, and its connection's writer sends that
// frame with one SendMsg, which the codec (codec.go) passes to gRPC
// untouched.
//
// No gRPC stats handler is installed unless WithTracing asks for one
// (tracing.go): any handler makes grpc-go read the clock and allocate on
// every SendMsg, which a fan-out pays once per subscriber stream.
//
// Publishing has two doors and one path: Publish and PublishStream
// (publishstream.go) both check and sequence each message in
// Server.publish (publish.go). A PublishStream's reader takes requests off
// the stream only while fewer than its window of publishes are unanswered,
// and its handler publishes and answers them in order, a request's batch
// in one response; the two share channels, not locks.
//
// Commands run in turns too (commands.go). A join that the broker can only
// finish after an engine's round trip is answered in a later turn
// (joins.go), so no command makes a writer wait on the network. Every broker
// error reaches clients through one mapping to gRPC status (status.go).
//
// # Abuse limits
//
// What a client may cost is bounded before the work it would cause, and
// each limit is checked where that cost would arise (limits.go has their
// options): connections by the listener (listener.go: the cap, and the
// deadline to authenticate; acceptpace.go: the pace of accepts while many
// await authentication); a call's headers by grpc-go
// (MaxHeaderListSize); its credential from those headers, before its body
// is read (tap.go); its request's size and map entries on its bytes,
// before it is decoded (decode.go); and what one credential may hold open
// or do per second by the interceptors and access (credlimits.go,
// access.go). A refusal is cheap, but not free: a stream whose commands
// keep being refused is ended (commands.go), and a connection whose calls
// keep being refused before they run is closed (listener.go).
//
// # The operator's side
//
// AdminService (admin.go) reads snapshots: the broker's rooms (each under
// its read lock for the copy), and the open sessions that access keeps
// (sessions.go), each liveSession's lock held only to read its identity.
// It ends sessions through their end func, as a credential recheck does,
// and closes rooms in the broker, whose subscribers then end their streams
// in their own turns. The access log (accesslog.go) is a call record in
// each call's context, filled by interceptors and by the handlers, and
// logged when the call ends; reflection (reflect.go) serves the proto files
// with their comments from gen/descriptors.
//
// # Lock order
//
// A -> B means a goroutine may hold A and take B, never the reverse.
//
//	Server.mu         -> session.mu          beginStop wakes every live session
//	Server.mu         -> outConn.mu          ... and wake queues it on its connection
//	Server.mu         -> health server lock  beginStop turns health NOT_SERVING
//	Server.connsMu    -> outConn.mu          connOf (register) and unregister
//	broker shard lock -> broker room lock    inside the broker
//	broker room lock  -> session.mu          the broker calls session.wake, a subscriber's
//	                                         notify func, while it holds the room's lock
//	broker room lock  -> outConn.mu          ... and wake queues the session
//
// What follows from it:
//   - session.mu and outConn.mu are never held together: wake and release
//     let go of session.mu before they queue a session with outConn.push.
//   - No server lock is held across a call into the broker (a turn's
//     Collect, Park, Commit, Join or Leave; finish's Close): the broker may
//     call session.wake, for this session or another, from inside.
//   - A large request's turn (largeturns.go) is taken in the codec with
//     no lock held (RecvMsg, and so the codec, runs with none), and held
//     while the request is decoded, which waits on nothing, and by the
//     next taker through its rest, which waits on a timer and its call;
//     largeTurns.mu is taken last, and never held while waiting.
//   - No lock at all is held across SendMsg or RecvMsg, a wait on
//     connWriter.signal or session.end, or a send on session.cmds. The channel
//     sends that may run under a caller's lock never block: connWriter.poke,
//     which wake reaches under a room's lock, and session.endWith, whose
//     writing of the stream's status takes only grpc-go's transport locks.
//   - Taken last, with nothing after them: the broker Subscriber's own
//     mutex, auth.RateLimiter's, the rate.Limiter of a stream's commands,
//     connGuard.mu, streamCounts.mu,
//     the runtime's timer locks (session.expiry) and the sync.Maps (live,
//     writers, access.sessions; the sweeper's Range may Store into writers).
package server
