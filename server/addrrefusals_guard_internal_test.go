package server

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/peer"
)

// The guard pauses a connection's refused calls past its address's
// allowance, by the connection's own count: refusedCall on hand-made
// tracked connections, with no network. An IPv4-mapped address is its
// IPv4 one, an IPv6 /64 one address, and 0 turns the allowance off.
func TestGuardPausesPastTheAddressAllowance(t *testing.T) {
	newGuard := func(allowance int) *connGuard {
		return newConnGuard(&config{log: slog.New(slog.DiscardHandler), limits: limits{maxConns: 100, addressRefusedCalls: allowance}})
	}
	g := newGuard(DefaultAddressRefusedCalls)
	local := &net.TCPAddr{IP: net.IPv4(10, 9, 9, 9), Port: 443}
	conn := func(ip string, port int) context.Context {
		t.Helper()
		remote := &net.TCPAddr{IP: net.ParseIP(ip), Port: port}
		tr := &tracked{key: connKey(remote, local)}
		g.mu.Lock()
		g.byKey[tr.key] = tr
		g.mu.Unlock()
		return peer.NewContext(context.Background(), &peer.Peer{Addr: remote, LocalAddr: local})
	}
	conns := []context.Context{conn("10.0.0.1", 1), conn("10.0.0.1", 2), conn("10.0.0.1", 3)}
	start := time.Now()
	first := 0
	for i := 1; i <= 300 && first == 0; i++ {
		if d := g.refusedCall(conns[i%3]); d > 0 {
			first = i
			if d != time.Millisecond {
				t.Errorf("first pause %v, want 1ms", d)
			}
		}
	}
	if first != 201 {
		t.Fatalf("first pause at refusal %d, want 201 (took %v)", first, time.Since(start))
	}
	// A connection of the address that has made no refusal of its own yet:
	// paused by its own count (1 ms), not by the address's excess.
	fresh := conn("10.0.0.1", 4)
	if d := g.refusedCall(fresh); d != time.Millisecond {
		t.Errorf("a fresh connection of the address was paused %v, want 1ms", d)
	}
	// The same IPv4 address, as a dual-stack listener gives it.
	if d := g.refusedCall(conn("::ffff:10.0.0.1", 5)); d == 0 {
		t.Errorf("the IPv4-mapped form of the address was not paused")
	}
	// Another address has its own allowance.
	other := conn("10.0.0.2", 1)
	for range freeRefusedCalls {
		if d := g.refusedCall(other); d != 0 {
			t.Fatalf("another address was paused %v", d)
		}
	}
	// An IPv6 /64 is one address.
	for i := range 201 {
		ctx := conn("2001:db8:1:2::"+string(rune('a'+i%6)), 1000+i)
		if d := g.refusedCall(ctx); (d > 0) != (i == 200) {
			t.Fatalf("refusal %d of the /64 paused %v", i+1, d)
		}
	}
	// Turned off, only a connection's own allowance is left.
	g = newGuard(0)
	conns = []context.Context{conn("10.0.0.1", 1), conn("10.0.0.1", 2), conn("10.0.0.1", 3)}
	for i := 1; i <= 300; i++ {
		if d := g.refusedCall(conns[i%3]); d > 0 {
			t.Fatalf("with no address allowance, refusal %d over 3 connections was paused %v", i, d)
		}
	}
}
