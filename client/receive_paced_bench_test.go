//go:build unix

package client_test

import (
	"context"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/client"
)

// BenchmarkPacedReceive is BenchmarkReceive with 1 KiB messages
// published one at a time, each waiting for the server's answer (roomcast)
// or a round trip (nats.go's Flush), so that most reads of the subscriber
// bring one message, as when a room is paced rather than saturated: it
// measures what the subscriber pays per read, which batches hide.
//
//	go test -run '^$' -bench BenchmarkPacedReceive -benchtime=20000x -count 6 ./client/
func BenchmarkPacedReceive(b *testing.B) {
	benchReceive(b, 1024, func(ctx context.Context, p *client.Publisher, data []byte, n int) error {
		for range n {
			if _, _, err := p.Publish(ctx, "bench", data); err != nil {
				return err
			}
		}
		return nil
	}, func(nc *nats.Conn, data []byte, n int) error {
		for range n {
			if err := nc.Publish("bench", data); err != nil {
				return err
			}
			if err := nc.Flush(); err != nil {
				return err
			}
		}
		return nil
	})
}

// startNATS runs an embedded nats-server for the benchmark's duration and
// returns a connection to it.
func startNATS(b *testing.B) *nats.Conn {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		b.Fatal(err)
	}
	go ns.Start()
	b.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats-server did not start")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	return nc
}
