//go:build unix

package server_test

import (
	"strconv"
	"testing"

	"google.golang.org/grpc"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// benchCommandRooms is how many rooms BenchmarkCommandsServe's stream joins
// and leaves in turn, as attack (e) of issue #13 does.
const benchCommandRooms = 256

// BenchmarkCommandsServe is BenchmarkPublishServe's measure (the server in
// a process of its own, authenticating API keys, server-µs/command,
// server-allocs/command and server-B/command) for Subscribe commands: one stream sends joins and
// leaves in turn, each leave of the room the join before it joined, over
// benchCommandRooms rooms, while another goroutine reads the replies; an op
// is one command. Under "new-rooms" no one else is in those rooms, so each
// join makes a room and each leave frees it, as in attack (e) of issue #13;
// under "kept-rooms" another stream is in them all. The server's command
// rates are lifted ($ROOMCAST_BENCH_NO_COMMAND_RATES), so that every command
// runs; the same environment variables apply.
//
//	go test -run '^$' -bench BenchmarkCommandsServe -benchmem -benchtime=100000x -count 6 ./server/
func BenchmarkCommandsServe(b *testing.B) {
	b.Setenv(serveChildNoCommandRatesEnv, "1")
	b.Setenv(noSubscriberEnv, "1")
	for _, shape := range []string{"new-rooms", "kept-rooms"} {
		b.Run(shape, func(b *testing.B) {
			child, ctx, c := startServeTarget(b, "apikey")
			if shape == "kept-rooms" {
				rooms := make([]string, benchCommandRooms)
				for i := range rooms {
					rooms[i] = benchCommandRoom(i)
				}
				subscribe(b, ctx, c, rooms...)
			}
			stream, err := c.Subscribe(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil { // the session event
				b.Fatal(err)
			}
			reqs := commandBenchRequests(b.N)
			b.ReportAllocs()
			s0 := child.spent(b)
			b.ResetTimer()
			sendAndAwaitReplies(b, stream, reqs)
			s1 := child.spent(b)
			b.ReportMetric(float64((s1.CPU-s0.CPU).Nanoseconds())/1e3/float64(b.N), "server-µs/command")
			b.ReportMetric(float64(s1.Mallocs-s0.Mallocs)/float64(b.N), "server-allocs/command")
			b.ReportMetric(float64(s1.Bytes-s0.Bytes)/float64(b.N), "server-B/command")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commands/s")
		})
	}
}

func benchCommandRoom(i int) string { return "cmd." + strconv.Itoa(i%benchCommandRooms) }

// commandBenchRequests makes n commands: joins and leaves in turn, made
// before the clock starts.
func commandBenchRequests(n int) []*roomcastv1.SubscribeRequest {
	reqs := make([]*roomcastv1.SubscribeRequest, n)
	for i := range reqs {
		room := benchCommandRoom(i / 2)
		reqs[i] = joinReq(strconv.Itoa(i), room, nil)
		if i%2 == 1 {
			reqs[i] = &roomcastv1.SubscribeRequest{Id: strconv.Itoa(i), Command: &roomcastv1.SubscribeRequest_Leave{Leave: &roomcastv1.LeaveCommand{Room: room}}}
		}
	}
	return reqs
}

// sendAndAwaitReplies sends reqs on stream from a goroutine of its own and
// reads their replies, failing b at an error reply; the clock stops at the
// last reply.
func sendAndAwaitReplies(b *testing.B, stream grpc.BidiStreamingClient[roomcastv1.SubscribeRequest, roomcastv1.SubscribeResponse], reqs []*roomcastv1.SubscribeRequest) {
	sent := sendAll(stream.Send, reqs, func() error { return nil })
	for replied := 0; replied < len(reqs); {
		resp, err := stream.Recv()
		if err != nil {
			b.Fatalf("after %d replies: %v", replied, err)
		}
		rep := resp.GetReply()
		if rep == nil {
			continue
		}
		if e := rep.GetError(); e != nil {
			b.Fatalf("command %s refused: %v", rep.GetId(), e)
		}
		replied++
	}
	b.StopTimer()
	if err := <-sent; err != nil {
		b.Fatal(err)
	}
}
