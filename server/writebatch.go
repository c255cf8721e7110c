package server

import "google.golang.org/grpc"

// writeBatchBytes is how many bytes of frames grpc-go gathers for a
// connection before it writes them in one system call; it also writes
// whatever it holds once it has nothing more queued. grpc-go's default,
// 32 KiB, is about 30 deliveries of 1 KiB: in rooms of 10 at saturation a
// connection's writer queues more than that at once, so most writes were
// cut at the buffer's size (0.038 write calls per delivery, against NATS
// core's 0.016 to 0.02), and write system calls were about a third of
// the server's CPU. At 256 KiB the same shape makes 0.009 to 0.014 per
// delivery. A write of fewer, larger pieces costs the kernel the same per
// byte, and less per call.
//
// The buffer is shared (grpc.SharedWriteBuffer): a connection takes one
// from a pool when it writes and returns it when it flushes, so an idle
// connection holds none, and a busy one holds it only while it writes. A
// connection whose client stops reading keeps its buffer while its write
// is blocked, as it kept its own 32 KiB one before, for as long as the
// keepalive lets the connection stand.
const writeBatchBytes = 256 << 10

// writeBatchOptions are the grpc-go options of the write batch. Options
// given to WithGRPCOptions come after them, so a grpc.WriteBufferSize there
// replaces writeBatchBytes.
func writeBatchOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.WriteBufferSize(writeBatchBytes), grpc.SharedWriteBuffer(true)}
}
