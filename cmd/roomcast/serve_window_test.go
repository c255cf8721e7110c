package main

import (
	"net"
	"testing"

	"golang.org/x/net/http2"

	"github.com/roomcast/roomcast/internal/rawh2"
)

// --stream-window and --conn-window reach the server: it announces them to
// a client when it connects.
func TestServeWindowFlags(t *testing.T) {
	ctx := testCtx(t)
	const stream, conn = 1 << 20, 2 << 20
	addr := startServe(t, "--stream-window", "1048576", "--conn-window", "2097152").addr
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rawh2.New(nc)
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	defer func() {
		c.Close()
		<-c.Done()
	}()
	if err := c.Probe(1); err != nil {
		t.Fatal(err)
	}
	f, err := c.WaitProbe(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Settings[http2.SettingInitialWindowSize]; got != stream {
		t.Errorf("SETTINGS_INITIAL_WINDOW_SIZE %d, want %d", got, stream)
	}
	if got := f.Increments[0]; got != conn-65_535 {
		t.Errorf("connection window update %d, want %d", got, conn-65_535)
	}
}
