package client

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

type testKey struct{}

// A call's context hides its parent's deadline and nothing else: its
// values, its end and its error are the parent's, and contexts grpc-go
// derives from it join the parent's cancellation without a goroutine each.
func TestCallContextHidesOnlyTheDeadline(t *testing.T) {
	parent, cancel := context.WithTimeout(context.WithValue(context.Background(), testKey{}, "v"), time.Hour)
	defer cancel()
	call := callContext(parent)
	if d, ok := call.Deadline(); ok {
		t.Errorf("deadline %v reported", d)
	}
	if v := call.Value(testKey{}); v != "v" {
		t.Errorf("value %v, want the parent's", v)
	}
	before := runtime.NumGoroutine()
	children := make([]context.Context, 100)
	for i := range children {
		var stop context.CancelFunc
		children[i], stop = context.WithCancel(call)
		defer stop()
	}
	if n := runtime.NumGoroutine(); n >= before+len(children) {
		t.Errorf("%d contexts derived from it started %d goroutines", len(children), n-before)
	}
	cancel()
	<-call.Done()
	if !errors.Is(call.Err(), context.Canceled) {
		t.Errorf("ended with %v, want the parent's Canceled", call.Err())
	}
	for _, c := range children {
		<-c.Done()
	}
	if noDeadline := context.Background(); callContext(noDeadline) != noDeadline {
		t.Error("a context without a deadline was wrapped")
	}
}
