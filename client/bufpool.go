package client

import (
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
