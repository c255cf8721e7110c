package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/server"
)

// TestMain is also the attacker: run re-executes the test binary for
// each attack, with the attack in the environment.
func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(context.Background(), spec, os.Stdout))
	}
	goleak.VerifyTestMain(m)
}

// The harness builds roomcast, runs two cheap attacks in quick mode, and
// prints a row for each with the bystander's latencies; the rapid reset
// attacker is cut off by the server.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds roomcast and runs servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	jsonOut := filepath.Join(t.TempDir(), "attack.json")
	var stdout, stderr bytes.Buffer
	// A burst of resets smaller than one read of the attacker's pairs:
	// at the default burst (2000) and a second's attack, a machine loaded
	// by the rest of go test ./... could read too few of them to reach it
	// (31,000 pairs written, none cut off, once in CI).
	args := []string{"--quick", "--attacks", "rapid-reset,anon-burst", "--json", jsonOut, "--serve-args", "--stream-reset-burst 200"}
	if code := run(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, &stderr)
	}
	table := stdout.String()
	t.Logf("\n%s", table)
	for _, row := range []string{"(h) HTTP/2 rapid reset", "(i) anonymous publish burst"} {
		m := regexp.MustCompile(`\| ` + regexp.QuoteMeta(row) + ` \| [0-9.]+ ms \| [0-9.]+ ms \| [0-9.]+ ms \| [0-9.]+ ms \| [0-9.]+× \|.*\|\n`).FindString(table)
		if m == "" {
			t.Errorf("no row with the bystander's latencies for %s", row)
		}
		if strings.Contains(m, "error:") {
			t.Errorf("the row for %s has an error: %s", row, m)
		}
	}
	if !regexp.MustCompile(`[1-9][0-9,]* closed by the server with GOAWAY`).MatchString(table) {
		t.Errorf("the rapid reset attacker was never cut off")
	}
	if !strings.Contains(table, "(i) anonymous publish burst: serve also had --allow-anonymous") {
		t.Errorf("the table does not say which flags the anonymous burst's server had")
	}
	var results []result
	b, err := os.ReadFile(jsonOut)
	if err == nil {
		err = json.Unmarshal(b, &results)
	}
	if err != nil || len(results) != 2 || results[0].Attack.Delivered == 0 {
		t.Errorf("--json wrote %d results (%v): %s", len(results), err, b)
	}
}

// Every attack has a unique name, and --attacks refuses unknown ones.
func TestFlags(t *testing.T) {
	seen := map[string]bool{}
	for _, a := range attacks {
		if seen[a.name] || a.run == nil || a.label == "" {
			t.Errorf("attack %q is a duplicate or incomplete", a.name)
		}
		seen[a.name] = true
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"--attacks", "nope"}, &stderr, &stderr); code != 2 || !strings.Contains(stderr.String(), "no attack") {
		t.Errorf("--attacks nope: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"--layout", "nope"}, &stderr, &stderr); code != 2 || !strings.Contains(stderr.String(), "no layout") {
		t.Errorf("--layout nope: exit %d, %q", code, stderr.String())
	}
}

// Each stream of the announce attack announces a message and sends all of
// it but its last byte, as flow control lets it, and the server holds the
// streams open: here a message within what the server lets a Subscribe
// stream announce.
func TestAnnounceSendsAllButTheLastByte(t *testing.T) {
	testAnnounceSends(t, roomcastv1.BrokerService_Subscribe_FullMethodName, false)
}

// The announce-publish attack does the same on Publish, whose messages
// may rightly be 1 MiB; it redials, so it counts its dials. Its server
// must not have ended any stream or connection here.
func TestAnnouncePublishSendsAllButTheLastByte(t *testing.T) {
	testAnnounceSends(t, roomcastv1.BrokerService_Publish_FullMethodName, true)
}

// testAnnounceSends runs the announce attack on method, with a message
// well within every limit, until its 6 streams have sent all of it but its
// last byte, and checks that the server ended nothing.
func testAnnounceSends(t *testing.T, method string, redial bool) {
	const length = 60 << 10
	sh := announceShape{conns: 2, perConn: 3, length: length, method: method, redial: redial}
	n, got := runAnnounce(t, sh, func(n *announceCounts) bool { return n.full.Load() == 6 })
	if b := n.bytes.Load(); b != 6*(5+length-1) || n.opened.Load() != 6 {
		t.Errorf("%d streams opened, %d bytes sent; want 6 and %d", n.opened.Load(), b, 6*(5+length-1))
	}
	if n.ends.total() != 0 || n.closed.Load() != 0 || n.failures.Load() != 0 || n.dials.Load() != 2 {
		t.Errorf("the server ended streams or connections, or the attacker redialled: %s", got)
	}
	name := method[strings.LastIndexByte(method, '/')+1:]
	if !strings.HasPrefix(got, "6 "+name+" streams opened over 2 connections") {
		t.Errorf("the summary does not name %s: %s", name, got)
	}
	if strings.Contains(got, "dials made") != redial {
		t.Errorf("the summary counts dials made only with redial (%v): %s", redial, got)
	}
}

// A message announced far over a Subscribe command's limit, and over the
// stream's window (which grpc-go would have granted), has the server close
// the connection, which the attack counts. The first connection cut
// penalises the address, so the second, dialled at the same time, is
// either cut too or, if the server reaches it after the penalty, refused
// unserved (a failure).
func TestAnnounceOverTheLimitIsCutOff(t *testing.T) {
	sh := announceShape{conns: 2, perConn: 3, length: 2 * server.DefaultStreamWindow, method: roomcastv1.BrokerService_Subscribe_FullMethodName}
	n, got := runAnnounce(t, sh, func(n *announceCounts) bool {
		closed := n.closed.Load()
		return closed >= 1 && closed+n.failures.Load() == 2
	})
	if n.full.Load() != 0 {
		t.Errorf("%d streams sent all but the last byte: %s", n.full.Load(), got)
	}
}

// runAnnounce runs the announce attack of shape sh (2 connections of 3
// streams), against a server of its own until done says so, and returns
// its counts and summary.
func runAnnounce(t *testing.T, sh announceShape, done func(*announceCounts) bool) (*announceCounts, string) {
	_, addr := servertest.Start(t)
	ctx, cancel := context.WithCancel(servertest.Context(t))
	defer cancel()
	n := new(announceCounts)
	summary := make(chan string, 1)
	go func() { summary <- sh.run(ctx, addr, "", n) }()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !done(n) {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%d of 6 streams sent their message but its last byte (%d bytes in all), %d connections closed, %d failures", n.full.Load(), n.bytes.Load(), n.closed.Load(), n.failures.Load())
		}
	}
	cancel()
	got := <-summary
	t.Log(got)
	return n, got
}
