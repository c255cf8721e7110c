package client_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/server"
)

// Publish a JSON document to a room of a server on the default address.
func ExampleClient_Publish() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial("127.0.0.1:50051")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	offset, err := c.PublishText(ctx, "orders.eu", `{"id":42,"state":"paid"}`,
		client.WithContentType("application/json"),
		client.WithHeaders(map[string]string{"trace-id": "7f3a"}),
	)
	if err != nil {
		fmt.Println(err) // status.Code(err) tells why, such as codes.Unavailable
		return
	}
	fmt.Println("published at offset", offset)
}

// Subscribe to a room of a server started in-process, publish to it and read
// what arrives.
func ExampleClient_Subscribe() {
	srv, err := server.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	go srv.Serve(lis)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(lis.Addr().String())
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

	for msg, err := range sub.Messages() {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(msg.GetRoom(), msg.GetOffset(), msg.GetText())
		if msg.GetText() == "bye" {
			break
		}
	}
	// Output:
	// chat.lobby 1 hello
	// chat.lobby 2 world
	// chat.lobby 4 bye
}
