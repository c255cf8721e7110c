package server_test

import (
	"context"
	"errors"
	"net"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/metadata"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/rawh2"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// Two client addresses of the loopback network, told apart by the server.
const (
	flooder   = "127.0.0.1"
	bystander = "127.0.0.2"
)

// rawFrom opens a connection from ip to addr that sends the HTTP/2 preface
// and never calls; nil if the server had closed it before the preface was
// written, or the dial returned. It is closed when the test ends.
func rawFrom(t testing.TB, ip, addr string) *rawh2.Conn {
	t.Helper()
	lis, err := net.Listen("tcp", ip+":0")
	if err != nil { // Linux routes all of 127.0.0.0/8 to loopback, other systems may not
		t.Skipf("cannot use %s as a local address: %v", ip, err)
	}
	lis.Close()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) { // closed as soon as accepted, before the dial returned
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := rawh2.New(conn)
	if err != nil {
		conn.Close()
		return nil
	}
	t.Cleanup(func() {
		c.Close()
		<-c.Done()
	})
	return c
}

// served reports whether the server serves c: it answers a PING, rather
// than closing c. It fails the test at ctx's end.
func served(t testing.TB, ctx context.Context, c *rawh2.Conn) bool {
	t.Helper()
	if c == nil || c.Probe(1) != nil {
		return false
	}
	_, err := c.WaitProbe(ctx, 1)
	if ctx.Err() != nil {
		t.Fatalf("the server neither served nor closed a connection: %v", err)
	}
	return err == nil
}

var addrRefusals = regexp.MustCompile(`max-pending-per-address`)

// One address's connections past the cap on those awaiting authentication
// are closed as soon as accepted (with no hold: tarpit_test.go holds
// them), never handed to grpc-go, and ahead of a pace that would
// otherwise hold every accept after them, another
// address's connection among them: here one burst of one past the
// threshold and then none for decades.
func TestAddressPastItsPendingCapIsRefused(t *testing.T) {
	const maxPending, flood = 3, 20
	reg := prometheus.NewRegistry()
	var logs logBuffer
	addr := testjwt.StartServer(t, server.WithAuthTimeout(time.Hour), server.WithAcceptPace(maxPending, 1e-9, 1),
		server.WithMaxPendingPerAddress(maxPending), server.WithRefusedHold(0, 0), server.WithMetrics(reg), logTo(&logs))
	ctx := within(t, 10*time.Second)
	for range maxPending {
		if c := rawFrom(t, flooder, addr); !served(t, ctx, c) {
			t.Fatal("a connection within the cap was not served")
		}
	}
	for i := range flood {
		c := rawFrom(t, flooder, addr)
		if served(t, ctx, c) {
			t.Fatalf("connection %d past the cap was served", i+1)
		}
		if c == nil {
			continue
		}
		if end, _ := c.Wait(ctx); len(end.Frames) > 0 {
			t.Errorf("the server sent %v on a connection past the cap: grpc-go served it", end.Frames)
		}
	}
	if n := counter(t, reg, "roomcast_connections_address_refused_total"); n != flood {
		t.Errorf("roomcast_connections_address_refused_total = %v, want %d", n, flood)
	}
	lines := logs.lines(addrRefusals)
	if len(lines) == 0 {
		t.Error("the refusals were not logged")
	}
	for _, l := range lines {
		if !strings.Contains(l, "address="+flooder) {
			t.Errorf("a refusal was logged as %q, without the address", l)
		}
	}
	if !served(t, ctx, rawFrom(t, bystander, addr)) {
		t.Error("another address's connection was closed while the first held the cap")
	}
	if n := gaugeValue(t, reg, "roomcast_connections"); n != maxPending+1 {
		t.Errorf("roomcast_connections = %v, want %d", n, maxPending+1)
	}
}

// A connection leaves its address's count when it authenticates or
// closes, and only connections awaiting authentication count.
func TestAddressPendingCountFallsOnAuthenticationAndClose(t *testing.T) {
	const maxPending = 2
	reg := prometheus.NewRegistry()
	addr := testjwt.StartServer(t, server.WithAuthTimeout(time.Hour), server.WithMaxPendingPerAddress(maxPending),
		server.WithRefusedHold(0, 0), server.WithMetrics(reg))
	ctx := within(t, 10*time.Second)

	idle := rawFrom(t, flooder, addr)
	if !served(t, ctx, idle) {
		t.Fatal("the first connection was not served")
	}
	tok := testjwt.Token(t, "svc", time.Now().Add(time.Hour), testjwt.Grants(t, "r", "", ""))
	callCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	if _, err := dialFrom(t, flooder, addr).Publish(callCtx, &roomcastv1.PublishRequest{Room: "r"}); err != nil {
		t.Fatalf("an authenticated call from the address: %v", err)
	}
	if !served(t, ctx, rawFrom(t, flooder, addr)) {
		t.Fatal("a connection was refused with one awaiting authentication and one authenticated")
	}
	if served(t, ctx, rawFrom(t, flooder, addr)) {
		t.Fatal("a connection past the cap was served")
	}
	idle.Close()
	// The server finds the closed connection when it next looks, within
	// sweepEvery: an attacker's redials are refused until then.
	for !served(t, ctx, rawFrom(t, flooder, addr)) {
		if ctx.Err() != nil {
			t.Fatal("a connection from the address is still refused with one of its two closed")
		}
	}
	if n := counter(t, reg, "roomcast_connections_address_refused_total"); n < 1 {
		t.Errorf("roomcast_connections_address_refused_total = %v, want at least 1", n)
	}
}

// With no cap, an address may have any number of connections awaiting
// authentication.
func TestNoPendingCapPerAddress(t *testing.T) {
	reg := prometheus.NewRegistry()
	addr := testjwt.StartServer(t, server.WithAuthTimeout(time.Hour), server.WithMaxPendingPerAddress(0), server.WithMetrics(reg))
	ctx := within(t, 10*time.Second)
	for i := range 2 * server.DefaultMaxPendingPerAddress {
		if !served(t, ctx, rawFrom(t, flooder, addr)) {
			t.Fatalf("connection %d was refused with no cap", i+1)
		}
	}
	// Nor without an auth timeout, which the cap counts by.
	addr = testjwt.StartServer(t, server.WithAuthTimeout(0), server.WithMaxPendingPerAddress(1), server.WithMetrics(prometheus.NewRegistry()))
	for i := range 3 {
		if !served(t, ctx, rawFrom(t, flooder, addr)) {
			t.Fatalf("connection %d was refused with a cap of 1 and no auth timeout", i+1)
		}
	}
}

// A connection that the auth timeout closes leaves its address's count.
func TestAddressPendingCountFallsOnAuthTimeout(t *testing.T) {
	reg := prometheus.NewRegistry()
	addr := testjwt.StartServer(t, server.WithAuthTimeout(500*time.Millisecond), server.WithMaxPendingPerAddress(1),
		server.WithRefusedHold(0, 0), server.WithMetrics(reg))
	ctx := within(t, 10*time.Second)
	idle := rawFrom(t, flooder, addr)
	if !served(t, ctx, idle) {
		t.Fatal("the first connection was not served")
	}
	if served(t, ctx, rawFrom(t, flooder, addr)) {
		t.Fatal("a connection past the cap was served")
	}
	if _, err := idle.Wait(ctx); err != nil {
		t.Fatalf("the auth timeout did not close the idle connection: %v", err)
	}
	if !served(t, ctx, rawFrom(t, flooder, addr)) {
		t.Error("a connection was refused once the auth timeout closed the address's only one")
	}
}
