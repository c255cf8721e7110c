package server

import (
	"fmt"
	"math"

	"google.golang.org/grpc"
)

// HTTP/2 receive windows: how many bytes a client may send on a stream, and
// on a connection, before the server has read them. A stream's reader that
// stops reading (a Subscribe stream's reader pausing after refused commands,
// a handler busy with its request) leaves at most the stream window
// unread; the client's sends wait in flow control, on its side. grpc-go's
// default instead grows both windows up to 16 MiB from bandwidth-estimation
// pings, which let one flooding client make the server read, and buffer,
// millions of commands it would never run (issue #13, attack (e)).

// Defaults of the receive windows.
const (
	// DefaultStreamWindow is each stream's receive window. A PublishStream
	// publisher is held to a window a round trip: 256 KiB over 50 ms is
	// 5.2 MB a second (BenchmarkPublishStreamRTT measured 3.8 MB a second of
	// 1 KiB payloads, and 32,000 publishes a second of 64 bytes, more than
	// serve's publish rate); a Subscribe stream that floods commands leaves
	// at most this much of them unread. The flood's cost grows with it.
	DefaultStreamWindow = 256 << 10
	// DefaultConnWindow is each connection's receive window: the bytes of
	// all its streams in flight, which the server reads as they come, so it
	// bounds a connection's throughput (a window per round trip), not what
	// the server holds. Sixteen streams' windows.
	DefaultConnWindow = 16 * DefaultStreamWindow
)

// minWindow is the smallest window grpc-go applies (it ignores smaller
// ones): HTTP/2's initial window, 65,535 bytes, rounded up.
const minWindow = 64 << 10

// WithReceiveWindows fixes the HTTP/2 receive windows the server gives each
// stream and each connection, in bytes, which turns off grpc-go's
// bandwidth-estimating pings and its growing of the windows. A stream's
// window bounds what a client may have sent on it that the server has not
// read, so a stream whose reader pauses holds at most that; a connection's
// bounds its bytes in flight. Windows must be 64 KiB to 2 GiB - 1, the
// connection's at least the stream's; stream 0 keeps grpc-go's dynamic
// windows for both (conn is then ignored), which start at 64 KiB and grow
// to 16 MiB on a fast connection. The default is DefaultStreamWindow
// (256 KiB) and DefaultConnWindow (4 MiB).
func WithReceiveWindows(stream, conn int) Option {
	return func(c *config) { c.streamWindow, c.connWindow = stream, conn }
}

// validateWindows checks the windows of WithReceiveWindows.
func (l *limits) validateWindows() error {
	switch {
	case l.streamWindow == 0:
		return nil // dynamic: the connection's window is grpc-go's too
	case l.streamWindow < minWindow || l.streamWindow > math.MaxInt32:
		return fmt.Errorf("server: stream window must be 0 (dynamic) or %d to %d bytes, got %d", minWindow, math.MaxInt32, l.streamWindow)
	case l.connWindow < l.streamWindow || l.connWindow > math.MaxInt32:
		return fmt.Errorf("server: connection window must be from the stream window (%d) to %d bytes, got %d", l.streamWindow, math.MaxInt32, l.connWindow)
	}
	return nil
}

// windowOptions are the grpc-go options of the windows: none for dynamic
// windows. Fixing either window in grpc-go turns off the estimation for
// both, so both are always given.
func (l *limits) windowOptions() []grpc.ServerOption {
	if l.streamWindow == 0 {
		return nil
	}
	return []grpc.ServerOption{
		grpc.StaticStreamWindowSize(int32(l.streamWindow)),
		grpc.StaticConnWindowSize(int32(l.connWindow)),
	}
}
