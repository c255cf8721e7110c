package redisengine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/internal/redistest"
)

// New fails, naming the server, when one cannot be reached; and refuses a
// config without servers.
func TestNewFailsWithoutRedis(t *testing.T) {
	srv := redistest.Start(t)
	addr := srv.Addr
	srv.Kill()
	_, err := redisengine.New(testCtx(t), redisengine.Config{Addrs: []string{addr}, Timeout: 500 * time.Millisecond})
	if !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("New with %s down: %v; want ErrUnavailable naming it", addr, err)
	}
	if _, err := redisengine.New(testCtx(t), redisengine.Config{}); err == nil {
		t.Fatal("New without an address succeeded")
	}
}

// With Redis hung, every call that waits on it fails within the timeout,
// wrapping broker.ErrUnavailable, and a caller's own deadline is reported
// as such.
func TestEveryCallFailsWithinTimeoutWhenRedisHangs(t *testing.T) {
	const timeout = 300 * time.Millisecond
	srv := redistest.Start(t)
	e := newEngine(t, redisengine.Config{Timeout: timeout}, srv)
	if _, _, err := e.Track(testCtx(t), "warm", nil, 0); err != nil {
		t.Fatal(err)
	}
	srv.Pause(t)
	defer srv.Resume(t)
	calls := map[string]func(ctx context.Context) error{
		"Publish": func(ctx context.Context) error { _, _, err := e.Publish(ctx, "r", []byte("x"), ""); return err },
		"Track":   func(ctx context.Context) error { _, _, err := e.Track(ctx, "cold", nil, 0); return err },
		"Read":    func(ctx context.Context) error { _, _, err := e.Read(ctx, "r", 0, 10, false); return err },
		"AddMember": func(ctx context.Context) error {
			return e.AddMember(ctx, "r", "s", nil)
		},
		"RemoveMember": func(ctx context.Context) error { return e.RemoveMember(ctx, "r", "s") },
		"Members":      func(ctx context.Context) error { _, _, err := e.Members(ctx, "r", 10); return err },
	}
	for name, call := range calls {
		start := time.Now()
		err := call(testCtx(t))
		if took := time.Since(start); !errors.Is(err, broker.ErrUnavailable) || took > timeout+time.Second {
			t.Errorf("%s with Redis hung: %v after %v; want ErrUnavailable within %v", name, err, took, timeout)
		}
		// A caller's deadline shorter than the engine's timeout ends the
		// call with the caller's error; unless the connection was already
		// judged broken (by the calls before, which timed out on it), in
		// which case the call fails at once, unavailable.
		ctx, cancel := context.WithTimeout(testCtx(t), timeout/10)
		start = time.Now()
		err = call(ctx)
		took := time.Since(start)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, broker.ErrUnavailable) || took > timeout/10+time.Second {
			t.Errorf("%s past the caller's deadline: %v after %v, want context.DeadlineExceeded (or ErrUnavailable) within %v", name, err, took, timeout/10)
		}
	}
	e.Untrack("warm") // does not wait on Redis
}

// After Close every call fails with broker.ErrClosed, Close again does
// nothing, and nothing is left running (TestMain's goleak).
func TestClose(t *testing.T) {
	srv := redistest.Start(t)
	s := newSink()
	e := newEngine(t, redisengine.Config{Sink: s, PresenceTTL: 30 * time.Millisecond}, srv)
	if _, _, err := e.Track(testCtx(t), "r", nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.AddMember(testCtx(t), "r", "s", nil); err != nil {
		t.Fatal(err)
	}
	e.Untrack("r") // a linger timer runs
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Publish(testCtx(t), "r", []byte("x"), ""); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	if _, _, err := e.Track(testCtx(t), "r", nil, 0); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Track after Close: %v", err)
	}
	if _, _, err := e.Read(testCtx(t), "r", 0, 1, false); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if err := e.AddMember(testCtx(t), "r", "s", nil); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("AddMember after Close: %v", err)
	}
	e.Untrack("r")
}

// Factory makes an engine that delivers to the Sink it is given, and
// reports a failure with a nil engine.
func TestFactory(t *testing.T) {
	srv := redistest.Start(t)
	s := newSink()
	engine, err := redisengine.Factory(testCtx(t), redisengine.Config{Addrs: []string{srv.Addr}})(broker.EngineConfig{Sink: s})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	head, _, err := engine.Track(testCtx(t), "r", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := engine.Publish(testCtx(t), "r", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() string { return offsets(s.events("r")) }, func() bool { return s.contiguous("r", 0, head.Epoch, 1) == nil })

	bad, err := redisengine.Factory(testCtx(t), redisengine.Config{Addrs: []string{srv.Addr}})(broker.EngineConfig{Sink: s, HistoryTTL: -time.Second})
	if err == nil || bad != nil || !strings.Contains(err.Error(), "HistoryTTL") {
		t.Fatalf("a bad config: %v, %v; want a nil engine and an error naming HistoryTTL", bad, err)
	}
}
