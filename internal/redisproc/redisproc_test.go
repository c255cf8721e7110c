package redisproc_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/roomcast/roomcast/internal/redisproc"
	"github.com/roomcast/roomcast/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A server answers once Start returns, not after Stop, and again after
// Relaunch on the same address.
func TestStartStopRelaunch(t *testing.T) {
	redistest.Require(t)
	p, err := redisproc.Start(t.TempDir(), redisproc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if err := redisproc.Ping(p.Addr); err != nil {
		t.Fatal(err)
	}
	addr := p.Addr
	p.Stop()
	if redisproc.Ping(addr) == nil {
		t.Fatal("PING answered after Stop")
	}
	if err := p.Signal(nil); err == nil {
		t.Error("Signal on a stopped server did not fail")
	}
	if err := p.Relaunch(); err != nil {
		t.Fatal(err)
	}
	if p.Addr != addr || redisproc.Ping(p.Addr) != nil {
		t.Fatalf("relaunched on %s (was %s), or not answering", p.Addr, addr)
	}
}
