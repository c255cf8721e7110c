package client

import "google.golang.org/grpc"

// HTTP/2 receive windows of a Client's connection. Left unset, grpc-go
// starts at 64 KiB and sizes the windows by estimating the bandwidth-delay
// product, which sends a PING after every quiet spell on the connection: for
// a subscriber receiving one small message at a time that is a PING, its
// write, the ack's read and a wake-up of the transport's writer per message,
// more than the message costs to decode (BenchmarkReceive). Fixed windows
// turn the estimate off. A stream may hold 1 MiB the application has not
// read yet (the Subscription's own queue holds up to 4 MiB besides), and a
// connection 8 MiB across its streams: enough for a subscriber far from
// the server, and a bound on what a stalled one buffers.
const (
	streamWindow = 1 << 20
	connWindow   = 8 << 20
)

// flowControlOptions are the dial options that set the receive windows;
// WithDialOptions may override them.
func flowControlOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(connWindow),
	}
}
