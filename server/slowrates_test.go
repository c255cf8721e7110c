package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/server"
)

// A rate slower than one a day is refused by New, naming the rate: at
// --publish-rate 1e-11 the server used to start, advise a second publish
// to wait nearly the longest Duration, and panic in its tap rounding that
// up, on grpc-go's connection-reading goroutine, which ended the process.
func TestNewRefusesARateSlowerThanOneADay(t *testing.T) {
	for name, opt := range map[string]server.Option{
		"publish rate":            server.WithPublishRate(1e-11, 1),
		"read rate":               server.WithReadRate(1e-10, 200),
		"credential command rate": server.WithCredentialCommandRate(1e-6, 10),
	} {
		if _, err := server.New(opt); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("New with a %s slower than one a day: %v, want an error naming it", name, err)
		}
	}
}

// At the slowest rate New takes, one a day, refusals past it are told to
// wait at most a day, crowded ones too.
func TestPublishesAtOneADay(t *testing.T) {
	_, addr := start(t, server.WithPublishRate(auth.MinRate, 1))
	c := dial(t, addr)
	var tally publishTally
	if tally.publish(testCtx(t), t, c); tally.ok.Load() != 1 {
		t.Fatal("the burst's publish refused")
	}
	for i := range 3 {
		if d := tally.publish(testCtx(t), t, c); d < 23*time.Hour || d > 24*time.Hour {
			t.Errorf("refusal %d: told to wait %v, want nearly a day, at most a day", i, d)
		}
	}
	if n := tally.refused.Load(); n != 3 {
		t.Errorf("%d of 3 publishes past the rate refused", n)
	}
}
