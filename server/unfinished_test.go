package server_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/rawh2"
	"github.com/roomcast/roomcast/server"
)

// The shape of the unfinished-request tests: messages of up to 64 KiB, a
// budget of 1 MiB over the server and a share of 512 KiB per address.
const (
	unfinishedMaxMessage = 64 << 10
	unfinishedBudget     = 1 << 20
	unfinishedShare      = 512 << 10
)

// unfinishedServer starts a server with the tests' shape.
func unfinishedServer(t *testing.T, reg *prometheus.Registry, opts ...server.Option) string {
	t.Helper()
	_, addr := start(t, append([]server.Option{
		server.WithMetrics(reg),
		server.WithMaxMessageBytes(unfinishedMaxMessage),
		server.WithMaxUnfinishedBytes(unfinishedBudget, unfinishedShare),
		frozenPenalties(),
	}, opts...)...)
	return addr
}

// publishBytes is a gRPC message holding a Publish to room of a text of
// about n bytes.
func publishBytes(t testing.TB, room string, n int) []byte {
	t.Helper()
	b, err := proto.Marshal(&roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: string(make([]byte, n))}})
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(msg[1:], uint32(len(b)))
	return append(msg, b...)
}

// heldBy is what the scanner counts n bytes sent by DataBytes as holding:
// its frames of up to 16 KiB, at their cost.
func heldBy(n int) float64 {
	var held uint64
	for ; n > 0; n -= 16 << 10 {
		held += server.FrameCost(min(n, 16<<10))
	}
	return float64(held)
}

// sendPublishes opens n Publish calls on c and sends each of them part,
// then flushes. It stops at the first error, the server's closing the
// connection, and returns the calls opened.
func sendPublishes(c *rawh2.Conn, n int, part []byte) ([]uint32, error) {
	var ids []uint32
	for range n {
		id, err := rawCall(c, roomcastv1.BrokerService_Publish_FullMethodName, nil, false)
		if err != nil {
			return ids, err
		}
		ids = append(ids, id)
		if err := c.DataBytes(id, part); err != nil {
			return ids, err
		}
	}
	return ids, c.Flush()
}

// holdPublishes opens n Publish calls on c and sends each of them msg but
// for its last keep bytes, then waits until the server has read it all.
// It returns the streams.
func holdPublishes(t *testing.T, c *rawh2.Conn, n int, msg []byte, keep int) []uint32 {
	t.Helper()
	ids, err := sendPublishes(c, n, msg[:len(msg)-keep])
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Probe(1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitProbe(within(t, 10*time.Second), 1); err != nil {
		t.Fatalf("the server did not answer after the publishes: %v", err)
	}
	return ids
}

// finishRequest sends rest, the rest of stream id's request, and ends the
// stream.
func finishRequest(c *rawh2.Conn, id uint32, rest []byte) error {
	if err := c.DataBytes(id, rest); err != nil {
		return err
	}
	if err := c.EndStream(id); err != nil {
		return err
	}
	return c.Flush()
}

// Publishes whose messages are announced and left unfinished, past the
// server's budget, close the connection of the address that holds the
// most, with GOAWAY, and penalise it for holding more than its share;
// another address's unfinished publishes and a bystander go on. Before,
// the server held whatever the publishes announced: 1,000 streams of 1 MiB
// each held a gigabyte.
func TestUnfinishedPublishesPastTheServersBudgetCloseTheLargest(t *testing.T) {
	for _, tr := range rawTransports(t) {
		t.Run(tr.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			addr := unfinishedServer(t, reg, tr.opts...)
			ctx := within(t, 20*time.Second)
			check := calmBystander(t, ctx, addr, tr.dial...)
			msg := publishBytes(t, "held", 60<<10)

			other := tr.from("127.0.0.4").connectRaw(t, addr)
			kept := holdPublishes(t, other, 2, msg, 30<<10) // 60 KiB
			if got, want := gaugeValue(t, reg, "roomcast_unfinished_request_bytes"), 2*heldBy(len(msg)-30<<10); got != want {
				t.Fatalf("roomcast_unfinished_request_bytes = %v, want %v", got, want)
			}

			attacker := tr.from("127.0.0.3").connectRaw(t, addr)
			sendPublishes(attacker, 20, msg[:len(msg)-1]) // 1.3 MB, all but a byte of each message; it fails once the server closes it
			end, err := attacker.Wait(ctx)
			if err != nil || end.GoAway == nil || *end.GoAway != http2.ErrCodeEnhanceYourCalm {
				t.Fatalf("the attacker's connection: %+v, %v; want it closed with GOAWAY (ENHANCE_YOUR_CALM)", end, err)
			}
			if n := counter(t, reg, "roomcast_unfinished_request_closes_total"); n != 1 {
				t.Errorf("roomcast_unfinished_request_closes_total = %v, want 1", n)
			}
			if n := labelled(t, reg, "roomcast_abuse_penalties_total", "reason", "unfinished_requests"); n != 1 {
				t.Errorf("penalties for unfinished requests: %v, want 1", n)
			}
			if got := gaugeValue(t, reg, "roomcast_unfinished_request_bytes"); got > unfinishedBudget {
				t.Errorf("roomcast_unfinished_request_bytes = %v after the close, over the budget", got)
			}

			// The other address's publishes finish, and are published.
			for _, id := range kept {
				if err := finishRequest(other, id, msg[len(msg)-30<<10:]); err != nil {
					t.Fatal(err)
				}
				if end, err := other.WaitStream(ctx, id); err != nil || end.Status != "0" {
					t.Fatalf("the other address's publish ended %+v, %v; want OK", end, err)
				}
			}
			check()
		})
	}
}

// A holder that has gone quiet is closed by the read of another address
// that takes the sum over the budget: at once, without GOAWAY, in
// plaintext and under TLS (whose own close would wait on the client).
func TestAQuietHolderIsClosedByAnotherAddresssRead(t *testing.T) {
	for _, tr := range rawTransports(t) {
		t.Run(tr.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			addr := unfinishedServer(t, reg, tr.opts...)
			ctx := within(t, 20*time.Second)
			msg := publishBytes(t, "held", 60<<10)
			quiet := tr.from("127.0.0.3").connectRaw(t, addr)
			holdPublishes(t, quiet, 13, msg, 1) // 855 KB, over its share
			other := tr.from("127.0.0.4").connectRaw(t, addr)
			kept, err := sendPublishes(other, 4, msg[:len(msg)-1]) // 263 KB more: over the budget
			if err != nil {
				t.Fatal(err)
			}
			end, err := quiet.Wait(ctx)
			if err != nil || end.GoAway != nil {
				t.Fatalf("the quiet holder's connection: %+v, %v; want it closed, without GOAWAY", end, err)
			}
			if n := counter(t, reg, "roomcast_unfinished_request_closes_total"); n != 1 {
				t.Errorf("roomcast_unfinished_request_closes_total = %v, want 1", n)
			}
			if n := labelled(t, reg, "roomcast_abuse_penalties_total", "reason", "unfinished_requests"); n != 1 {
				t.Errorf("penalties for unfinished requests: %v, want 1", n)
			}
			for _, id := range kept {
				if err := finishRequest(other, id, msg[len(msg)-1:]); err != nil {
					t.Fatal(err)
				}
				if end, err := other.WaitStream(ctx, id); err != nil || end.Status != "0" {
					t.Fatalf("the other address's publish ended %+v, %v; want OK", end, err)
				}
			}
		})
	}
}

// An address may hold more than its share while the server's budget
// lasts: a grpc-go client that publishes many large messages at once on
// one connection has them all half-arrived (it sends its streams' frames
// in turn), and is not cut for it. Its publishes finish and leave nothing
// counted.
func TestAnAddressOverItsShareIsNotCutWhileTheBudgetLasts(t *testing.T) {
	reg := prometheus.NewRegistry()
	addr := unfinishedServer(t, reg)
	ctx := within(t, 20*time.Second)
	msg := publishBytes(t, "big", 60<<10)
	c := dialRaw(t, addr)
	ids := holdPublishes(t, c, 12, msg, 1) // 790 KB: over the share, within the budget
	if got, want := gaugeValue(t, reg, "roomcast_unfinished_request_bytes"), 12*heldBy(len(msg)-1); got != want {
		t.Fatalf("roomcast_unfinished_request_bytes = %v, want %v", got, want)
	}
	for _, id := range ids {
		if err := finishRequest(c, id, msg[len(msg)-1:]); err != nil {
			t.Fatal(err)
		}
		if end, err := c.WaitStream(ctx, id); err != nil || end.Status != "0" {
			t.Fatalf("a publish ended %+v, %v; want OK", end, err)
		}
	}
	if err := c.Probe(2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitProbe(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if got := gaugeValue(t, reg, "roomcast_unfinished_request_bytes"); got != 0 {
		t.Errorf("roomcast_unfinished_request_bytes = %v once the publishes finished, want 0", got)
	}
	if n := counter(t, reg, "roomcast_unfinished_request_closes_total"); n != 0 {
		t.Errorf("roomcast_unfinished_request_closes_total = %v, want 0", n)
	}
}

// A publish the server ends before its message is whole (here, announced
// past the receive limit) holds nothing, though its client goes on sending
// on it: grpc-go dropped the stream, and the scanner skips what comes on
// it. Counted still, twenty of them would hold more than the budget and
// have the connection closed.
func TestPublishesTheServerEndedHoldNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	addr := unfinishedServer(t, reg)
	ctx := within(t, 20*time.Second)
	c := dialRaw(t, addr)
	over := []byte{0, 0, 0x10, 0, 0} // 1 MiB: past the receive limit
	ids := make([]uint32, 20)
	for i := range ids {
		id, err := rawCall(c, roomcastv1.BrokerService_Publish_FullMethodName, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
		if err := c.DataBytes(id, over); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if end, err := c.WaitStream(ctx, id); err != nil || end.Status != "8" && !end.Reset {
			t.Fatalf("a publish announced past the limit ended %+v, %v; want RESOURCE_EXHAUSTED", end, err)
		}
	}
	for _, id := range ids { // the rest of what the window allowed: 60 KiB each
		if err := c.DataBytes(id, make([]byte, 60<<10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Probe(1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitProbe(ctx, 1); err != nil {
		t.Fatalf("the server closed the connection: %v", err)
	}
	if got := gaugeValue(t, reg, "roomcast_unfinished_request_bytes"); got != 0 {
		t.Errorf("roomcast_unfinished_request_bytes = %v, want 0", got)
	}
	if n := counter(t, reg, "roomcast_unfinished_request_closes_total"); n != 0 {
		t.Errorf("roomcast_unfinished_request_closes_total = %v, want 0", n)
	}
}
