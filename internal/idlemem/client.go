package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// parallel is how many connections, or streams, the client opens at once.
const parallel = 64

// runClient is the client process: it opens the connections, says
// "connected", waits for "subscribe", opens the streams, says
// "subscribed", and holds them all until its input ends.
func runClient(o options, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conns := make([]*grpc.ClientConn, o.connections)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	err := forEach(o.connections, func(i int) error {
		c, err := grpc.NewClient(o.client, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		conns[i] = c
		// A call opens the connection: the server holds it from then on.
		_, err = healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	})
	if err != nil {
		return err
	}
	lines := bufio.NewScanner(in)
	fmt.Fprintln(out, "connected")
	if !lines.Scan() || strings.TrimSpace(lines.Text()) != "subscribe" {
		return lines.Err()
	}
	err = forEach(o.connections*o.streams, func(i int) error {
		return subscribe(ctx, conns[i/o.streams], fmt.Sprintf("idle-%d", i%o.rooms))
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "subscribed")
	for lines.Scan() { // until the measuring process is done
	}
	return nil
}

// subscribe opens a stream on c, joins room and waits for the reply. The
// stream stays open until ctx is done.
func subscribe(ctx context.Context, c *grpc.ClientConn, room string) error {
	stream, err := roomcastv1.NewBrokerServiceClient(c).Subscribe(ctx)
	if err != nil {
		return err
	}
	join := &roomcastv1.SubscribeRequest{Id: "1", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: room}}}
	if err := stream.Send(join); err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if r := resp.GetReply(); r != nil {
			if r.GetError() != nil {
				return fmt.Errorf("joining %s: %s", room, r.GetError().GetMessage())
			}
			return nil
		}
	}
}

// forEach runs f for 0 to n-1, parallel at a time, and returns the first
// error.
func forEach(n int, f func(i int) error) error {
	next := make(chan int)
	errs := make(chan error, parallel)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var err error
feed:
	for i := range n {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	if err == nil {
		err = <-errs
	}
	return err
}
