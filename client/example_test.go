package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/server"
)

// Publish a JSON document to a room of a server on the default address,
// with a bearer token, and tell the errors apart.
func ExampleClient_Publish() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial("127.0.0.1:50051", client.WithBearerToken("my-api-key"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	offset, err := c.PublishText(ctx, "orders.eu", `{"id":42,"state":"paid"}`,
		client.WithContentType("application/json"),
		client.WithHeaders(map[string]string{"trace-id": "7f3a"}),
	)
	switch {
	case err == nil:
		fmt.Println("published at offset", offset)
	case errors.Is(err, client.ErrRateLimited):
		wait, _ := client.RetryAfter(err)
		fmt.Println("not published; publish again in", wait)
	case errors.Is(err, client.ErrUnavailable):
		// It may or may not have been published: Publish does not retry.
		fmt.Println("unknown outcome:", err)
	default:
		fmt.Println("refused:", status.Code(err), err)
	}
}

// Subscribe to a room of a server started in-process, publish to it and read
// what arrives.
func ExampleClient_Subscribe() {
	srv, addr, err := serve("127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(addr)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	sub, err := c.Subscribe(ctx, "chat.lobby")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()

	for _, text := range []string{"hello", "world"} {
		if _, err := c.PublishText(ctx, "chat.lobby", text); err != nil {
			fmt.Println(err)
			return
		}
	}
	// Leave out our own messages.
	if _, err := c.PublishText(ctx, "chat.lobby", "echo", client.WithExcludeSession(sub.SessionID())); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := c.PublishText(ctx, "chat.lobby", "bye"); err != nil {
		fmt.Println(err)
		return
	}

	for ev, err := range sub.Events() {
		if err != nil {
			fmt.Println(err)
			return
		}
		if msg := ev.Message; msg != nil {
			fmt.Println(msg.GetRoom(), msg.GetOffset(), msg.GetText())
			if msg.GetText() == "bye" {
				break
			}
		}
	}
	// Output:
	// chat.lobby 1 hello
	// chat.lobby 2 world
	// chat.lobby 4 bye
}

// Follow a room across a restart of the server: the subscription reconnects
// by itself, and since the new server has none of the old one's history, it
// reports the lost messages as a gap before going on.
func ExampleSubscription_Next() {
	srv, addr, err := serve("127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { srv.Close() }() // the last one
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(addr)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	sub, err := c.Subscribe(ctx, "news")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()
	if _, err := c.PublishText(ctx, "news", "before"); err != nil {
		fmt.Println(err)
		return
	}

	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		switch {
		case ev.Message != nil:
			fmt.Printf("message %d: %s\n", ev.Message.GetOffset(), ev.Message.GetText())
			if ev.Message.GetText() == "after" {
				return
			}
			// Restart the server on the same address.
			srv.Close()
			restarted, _, err := serve(addr)
			if err != nil {
				fmt.Println(err)
				return
			}
			srv = restarted
		case ev.Disconnected != nil:
			fmt.Println("disconnected:", status.Code(ev.Disconnected.Err))
		case ev.Reconnected != nil:
			for _, r := range ev.Reconnected.Rooms {
				fmt.Printf("reconnected: %s recovered=%v\n", r.Room, r.Recovered)
			}
		case ev.Gap != nil:
			g := ev.Gap
			fmt.Printf("gap in %s: lost what followed offset %d; new epoch %v; going on after offset %d\n",
				g.Room, g.LastDelivered.Offset, g.Resumed.Epoch != g.LastDelivered.Epoch, g.Resumed.Offset)
			if _, err := c.PublishText(ctx, "news", "after"); err != nil {
				fmt.Println(err)
				return
			}
		}
	}
	// Output:
	// message 1: before
	// disconnected: Unavailable
	// reconnected: news recovered=false
	// gap in news: lost what followed offset 1; new epoch true; going on after offset 0
	// message 1: after
}

// serve runs a server on addr until it is closed.
func serve(addr string) (*server.Server, string, error) {
	srv, err := server.New()
	if err != nil {
		return nil, "", err
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		srv.Close()
		return nil, "", err
	}
	go srv.Serve(lis)
	return srv, lis.Addr().String(), nil
}
