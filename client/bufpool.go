package client

import (
	"runtime"

	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"

	"github.com/roomcast/roomcast/internal/bufpool"
)

// receivePool is the pool of every Client's connection: grpc-go's default
// pool zeroes each buffer it hands out, a subscriber receiving one message
// of 1 KiB per frame 4 KiB per message; this one does not (see
// internal/bufpool for why that is safe on a client's connection).
var receivePool = new(bufpool.Pool)

// bufferPoolOptions is the dial option that makes a Client's connection use
// receivePool; WithDialOptions may override it.
func bufferPoolOptions() []grpc.DialOption {
	return []grpc.DialOption{experimental.WithBufferPool(receivePool)}
}

// ioBufferBytes is the most grpc-go reads from a Client's connection in one
// system call, and gathers to write in one. grpc-go's default, 32 KiB,
// took a subscriber connection several reads for each of the server's
// writes in rooms of 10 at saturation (the server writes up to 256 KiB at
// once), and a Publisher's full batch of 1 KiB payloads eight writes. Both
// buffers are taken from pools while a read or a write needs them, so an
// idle connection holds neither: the write buffer is shared, and grpc-go
// keeps no read buffer while nothing is buffered, but only on Linux and
// for a plaintext TCP connection (grpc-go v1.85's non-blocking reader).
// Otherwise (TLS, whose reads return a record of at most 16 KiB anyway)
// it keeps one per connection for good, so the read size stays grpc-go's
// there.
const ioBufferBytes = 256 << 10

// ioBufferOptions are the dial options of the read and write buffers, for
// a plaintext connection or not; WithDialOptions may override them.
func ioBufferOptions(plaintext bool) []grpc.DialOption {
	opts := []grpc.DialOption{
		grpc.WithWriteBufferSize(ioBufferBytes),
		grpc.WithSharedWriteBuffer(true),
	}
	if runtime.GOOS == "linux" && plaintext {
		opts = append(opts, grpc.WithReadBufferSize(ioBufferBytes))
	}
	return opts
}
