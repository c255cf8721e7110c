package client

import (
	"runtime"
	"testing"
)

// The larger read buffer is asked for only where grpc-go gives it back
// while a connection is idle: on Linux, in plaintext. Over TLS grpc-go
// would keep it per connection for good (about 230 KiB more per idle
// connection), for reads that return one record of 16 KiB at most.
func TestReadBufferOnlyInPlaintextOnLinux(t *testing.T) {
	linux := 0
	if runtime.GOOS == "linux" {
		linux = 1
	}
	if n := len(ioBufferOptions(true)); n != 2+linux {
		t.Errorf("plaintext: %d options, want %d (the write buffer's two, and the read buffer's on Linux)", n, 2+linux)
	}
	if n := len(ioBufferOptions(false)); n != 2 {
		t.Errorf("TLS: %d options, want 2 (the write buffer's only)", n)
	}
}
