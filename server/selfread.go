package server

import (
	"context"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// An idle Subscribe stream's memory is mostly its goroutines' stacks, and
// grpc-go's handler goroutine is deep (its transport, then every
// interceptor) before the session's code even starts. So the handler reads
// the stream's commands itself rather than waiting while a goroutine of
// the session's reads them: one goroutine per stream, not two.
//
// The catch is that the stream must still end, with the session's status,
// while the handler is blocked in RecvMsg: a slow consumer cut off, an
// expired credential, a drain. Returning is how a handler ends its stream,
// and it cannot return from RecvMsg. grpc-go's own stream, in the context
// of every call, can write the status itself, which finishes the stream:
// endWith does so once it set the reason. That unblocks RecvMsg (and a
// Send blocked by flow control), and the status the handler then returns
// finds the stream finished and is not written again: grpc-go writes a
// stream's status once, for whoever asks first.
//
// A stream whose transport cannot write its status so (the fake streams of
// tests; a grpc-go that no longer has the method) is read by a goroutine of
// its own, as before, and the handler waits.

// statusWriter is what grpc-go's transport stream does beyond
// grpc.ServerTransportStream.
type statusWriter interface {
	WriteStatus(st *status.Status) error
}

// statusWriterOf returns what writes the status of ctx's stream, nil if
// its transport cannot.
func statusWriterOf(ctx context.Context) statusWriter {
	if w, ok := grpc.ServerTransportStreamFromContext(ctx).(statusWriter); ok {
		return w // not its method value, which would be an allocation
	}
	return nil
}

// serve is the handler's part once the session is set up: it reads the
// stream's commands, on a goroutine of the session's if the stream cannot
// be ended while the handler reads, then returns the status the stream
// ends with.
func (ss *session) serve() error {
	if ss.writeStatus == nil {
		ss.srv.goroutines.Add(1)
		go ss.read()
		ss.wake() // its first turn greets the client
		return ss.wait()
	}
	ss.wake()
	ss.readGuarded()
	return ss.wait()
}

// read is the reading goroutine of a stream whose handler cannot read.
func (ss *session) read() {
	defer ss.srv.goroutines.Done()
	ss.readGuarded()
}

// readGuarded is readCommands ending the stream with INTERNAL if it
// panics, so that the stream is still finished as it ends.
func (ss *session) readGuarded() {
	defer ss.recoverReader()
	ss.readCommands()
}

// readCommands hands each command to the session's turns until the stream
// ends, or the client has sent all its commands.
func (ss *session) readCommands() {
	for {
		req := ss.spares.get()
		if err := ss.stream.RecvMsg(req); err != nil {
			// At io.EOF the client sent all its commands (grpcurl does so
			// when its input ends) but still listens: keep delivering.
			if err != io.EOF {
				ss.endWith(err)
			}
			return
		}
		refused := ss.rateLimit()
		if !ss.handOn(command{req: req, refused: refused}) {
			return
		}
		if refused != nil && !ss.pauseAfterRefusal() {
			return
		}
	}
}
