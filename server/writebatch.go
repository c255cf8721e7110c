package server

import "google.golang.org/grpc"

// writeBatchBytes is how many bytes of frames grpc-go gathers for a
// connection before it writes them in one system call; it also writes
// whatever it holds once it has nothing more queued. grpc-go's default,
// 32 KiB, is about 30 deliveries of 1 KiB: in rooms of 10 at saturation a
// connection's writer queues more than that at once, so most writes were
// cut at the buffer's size (0.038 write calls per delivery, against NATS
// core's 0.011 to 0.018), and write system calls were about a third of
// the server's CPU. At 256 KiB the same shape makes 0.009 to 0.011 per
// delivery (docs/performance.md). A write of fewer, larger pieces costs the kernel the same per
// byte, and less per call.
//
// The buffer is shared (grpc.SharedWriteBuffer, grpc-go's server default,
// given here so that it stays so): a connection takes one from a pool when
// it writes and returns it when it flushes, so an idle connection holds
// none (internal/idlemem measured the same RSS per idle connection as with
// 32 KiB). A connection whose client stops reading keeps its buffer while
// its write is blocked: 256 KiB where it was 32, beside the socket's own
// send buffer of up to 4 MiB, for as long as that write stays blocked.
const writeBatchBytes = 256 << 10

// writeBatchOptions are the grpc-go options of the write batch. Options
// given to WithGRPCOptions come after them, so a grpc.WriteBufferSize there
// replaces writeBatchBytes.
func writeBatchOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.WriteBufferSize(writeBatchBytes), grpc.SharedWriteBuffer(true)}
}
