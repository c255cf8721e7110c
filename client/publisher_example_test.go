package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/roomcast/roomcast/client"
)

// Publish from many goroutines over one stream: each call returns its
// message's offset once the server has sequenced it, while the other
// goroutines' messages are already on their way. With an idempotency key,
// the Publisher sends a message again by itself if the connection breaks
// before the answer, and the server sequences it only once.
func ExampleClient_NewPublisher() {
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

	p, err := c.NewPublisher(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	offsets := make([]uint64, 100)
	var wg sync.WaitGroup
	for i := range offsets {
		wg.Go(func() {
			off, _, err := p.PublishText(ctx, "metrics.cpu", fmt.Sprintf(`{"sample":%d}`, i),
				client.WithContentType("application/json"),
				client.WithIdempotencyKey(client.NewIdempotencyKey()),
			)
			switch {
			case errors.Is(err, client.ErrUnavailable):
				fmt.Println("not published after every attempt:", err)
			case err != nil:
				fmt.Println("refused:", err)
			}
			offsets[i] = off
		})
	}
	wg.Wait()
	slices.Sort(offsets)
	fmt.Println("published", len(offsets), "messages at offsets", offsets[0], "to", offsets[len(offsets)-1])
	// Output:
	// published 100 messages at offsets 1 to 100
}
