package redisengine_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
)

// printSink prints what a node would append to its rooms.
type printSink struct{}

func (printSink) Deliver(room string, e broker.Entry)       { fmt.Println(room, e.Offset, string(e.Body)) }
func (printSink) DeliverEvent(room string, ev broker.Event) { fmt.Println(room, "presence", ev.Seq) }
func (printSink) Reset(room string, head broker.Position) {
	fmt.Println(room, "lost entries; goes on after", head.Offset, "in", head.Epoch)
}

// One node on two Redis servers: track a room, publish into it, and read
// its history. (Not run: it needs the servers.)
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := redisengine.New(ctx, redisengine.Config{
		Addrs: []string{"127.0.0.1:6379", "127.0.0.1:6380"},
		Sink:  printSink{},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	head, _, err := e.Track(ctx, "chat.lobby", nil, 0)
	if err != nil {
		log.Fatal(err)
	}
	off, epoch, err := e.Publish(ctx, "chat.lobby", []byte("a Message, encoded without its offset"), "")
	if err != nil {
		log.Fatal(err) // errors.Is(err, broker.ErrUnavailable): Redis unreachable, outcome unknown
	}
	fmt.Println("stored at", off, "in", epoch, "after", head.Offset)
	_, history, err := e.Read(ctx, "chat.lobby", 0, 100, false)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(history), "retained")
}
