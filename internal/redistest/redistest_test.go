package redistest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/roomcast/roomcast/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A server answers, loses its data on Kill+Restart (new process, same
// address), and keeps what it saved with WithSnapshot.
func TestRestart(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []redistest.Option
		want string // GET a after SAVE, SET a 2, restart
	}{
		{"empty", nil, ""},
		{"snapshot", []redistest.Option{redistest.WithSnapshot()}, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := redistest.Start(t, tc.opts...)
			if err := s.Do(t, "SET", "a", "1").Error(); err != nil {
				t.Fatal(err)
			}
			if err := s.Do(t, "SAVE").Error(); err != nil {
				t.Fatal(err)
			}
			if err := s.Do(t, "SET", "a", "2").Error(); err != nil {
				t.Fatal(err)
			}
			run, addr := s.RunID(t), s.Addr
			s.Kill()
			if err := s.Do(t, "PING").Error(); err == nil {
				t.Fatal("PING answered after Kill")
			}
			s.Restart(t)
			if s.Addr != addr {
				t.Fatalf("restarted on %s, was %s", s.Addr, addr)
			}
			if got := s.RunID(t); got == run {
				t.Fatalf("run_id %s unchanged by a restart", got)
			}
			got, err := s.Do(t, "GET", "a").ToString()
			if err != nil && tc.want != "" {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("GET a = %q after restart, want %q", got, tc.want)
			}
			if _, err := os.Stat(filepath.Join(s.Dir, "log")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Two servers of one test get different ports; CLIENT KILL TYPE pubsub
// counts the subscribed connections it ends.
func TestTwoServersAndPubSubKill(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Addr == b.Addr {
		t.Fatalf("both on %s", a.Addr)
	}
	if n := a.KillPubSubClients(t); n != 0 {
		t.Fatalf("killed %d pubsub clients, want 0", n)
	}
	c, err := a.Client()
	if err != nil {
		t.Fatal(err)
	}
	d, cancel := c.Dedicate()
	defer cancel()
	wait := d.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: func(rueidis.PubSubMessage) {}})
	if err := d.Do(t.Context(), d.B().Subscribe().Channel("x").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if n := a.KillPubSubClients(t); n != 1 {
		t.Fatalf("killed %d pubsub clients, want 1", n)
	}
	if err := <-wait; err == nil {
		t.Fatal("hooks ended without an error after CLIENT KILL")
	}
}
