//go:build !linux

package server

import "net"

// watchTCP is where Linux gives a plaintext connection grpc-go's reads
// without a pinned buffer (see resets_linux.go); elsewhere grpc-go reads
// every connection through a buffer of its own.
func watchTCP(rc *resetConn, _ *net.TCPConn) net.Conn { return rc }
