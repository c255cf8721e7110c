// Package interop_test proves the Python and TypeScript clients generated
// from proto/ (gen/python, gen/ts) against the Go server: it runs the
// publishers and subscribers of examples/python and examples/node as
// programs, against servers started in the test, and checks what they print.
//
// The tests need Debian's python3-grpcio and python3-protobuf (for
// /usr/bin/python3) and Node with `npm ci` run at the repository's root.
// Without them they skip, saying what is missing; with CI set they fail
// instead, so that CI cannot pass without running them.
package interop_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"

	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/faultproxy"
)

// TestPythonPublisherReachesGoAndNode and TestNodePublisherReachesPython:
// what a publisher in one language sends, subscribers in the others get
// with the same bytes, offsets, headers and content type, and decode to the
// very message the Go client decodes.
func TestPythonPublisherReachesGoAndNode(t *testing.T) {
	t.Parallel()
	testPublisher(t, pythonLang, nodeLang)
}

func TestNodePublisherReachesPython(t *testing.T) {
	t.Parallel()
	testPublisher(t, nodeLang, pythonLang)
}

func testPublisher(t *testing.T, pub lang, subs ...lang) {
	pub.require(t)
	for _, l := range subs {
		l.require(t)
	}
	addr := startServer(t)
	ctx := testCtx(t)
	const room = "interop.pubsub"
	goSub := subscribeGo(t, ctx, addr, room)
	var procs []*proc
	for _, l := range subs {
		procs = append(procs, startSubscriber(t, ctx, l, addr, room))
	}

	// Bytes, including ones that are not UTF-8, and text that needs escaping
	// in JSON, each with headers and a content type.
	type sent struct {
		data        []byte
		text        *string
		contentType string
		headers     map[string]string
	}
	rng := rand.New(rand.NewPCG(1, 2))
	binHeaders := map[string]string{"trace-id": "4bf92f3577b34da6", "x.unicode": "héllo ✓ 🎉", "empty": ""}
	args := []string{"--server", addr, "--content-type", "application/octet-stream"}
	for k, v := range binHeaders {
		args = append(args, "--header", k+"="+v)
	}
	args = append(args, "--base64", room)
	var want []sent
	for i := range 20 {
		data := make([]byte, 1+rng.IntN(300))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		data[0] = []byte{0x00, 0xff, 0x80, 0xc3}[i%4] // never valid UTF-8 at the start, for some
		args = append(args, base64.StdEncoding.EncodeToString(data))
		want = append(want, sent{data: data, contentType: "application/octet-stream", headers: binHeaders})
	}
	offsets := runPublisher(t, pub, args...)

	texts := []string{"hello, room", `{"user":"ada","says":"hi \"there\""}`, "line one\nline two\ttab", "unicode: ünïcödé, 中文, emoji 🎉, RTL עברית"}
	textHeaders := map[string]string{"kind": "text"}
	// The text goes on a PublishStream, so both ways of publishing reach
	// the subscribers alike.
	args = []string{"--server", addr, "--content-type", "application/json; charset=utf-8", "--header", "kind=text", "--stream", room}
	args = append(args, texts...)
	for _, s := range texts {
		want = append(want, sent{text: &s, contentType: "application/json; charset=utf-8", headers: textHeaders})
	}
	offsets = append(offsets, runPublisher(t, pub, args...)...)

	if len(offsets) != len(want) {
		t.Fatalf("the %s publisher printed %d offsets for %d messages", pub.name, len(offsets), len(want))
	}
	for i, off := range offsets {
		if off != uint64(i+1) {
			t.Fatalf("the %s publisher printed offsets %v, want 1 to %d", pub.name, offsets, len(want))
		}
	}

	// The Go subscriber's messages are the reference.
	var ref []*roomcastv1.Message
	for i, w := range want {
		m := goSub.next()
		ref = append(ref, m)
		ok := m.GetRoom() == room && m.GetOffset() == offsets[i] && m.GetContentType() == w.contentType &&
			fmt.Sprint(m.GetHeaders()) == fmt.Sprint(w.headers)
		if w.text != nil {
			_, isText := m.GetPayload().(*roomcastv1.Message_Text)
			ok = ok && isText && m.GetText() == *w.text
		} else {
			_, isData := m.GetPayload().(*roomcastv1.Message_Data)
			ok = ok && isData && bytes.Equal(m.GetData(), w.data)
		}
		if !ok {
			t.Fatalf("Go subscriber got %v for message %d", m, i+1)
		}
	}
	for _, p := range procs {
		for i, ev := range p.messages(ctx, len(want)) {
			if m := ev.msg(t); !proto.Equal(m, ref[i]) {
				t.Errorf("%s got\n%v\nthe Go client got\n%v", p.name, m, ref[i])
			}
		}
	}
}

// TestBatchedResponses: when a subscriber is behind, the server sends many
// messages in one response (one MessageBatch); both languages decode every
// message of every batch.
func TestBatchedResponses(t *testing.T) {
	t.Parallel()
	pythonLang.require(t)
	nodeLang.require(t)
	addr := startServer(t)
	ctx := testCtx(t)
	const room = "interop.batches"
	procs := []*proc{startSubscriber(t, ctx, pythonLang, addr, room), startSubscriber(t, ctx, nodeLang, addr, room)}

	// Stop the subscribers so that the server's writes to them back up and
	// what is published meanwhile goes out in batches; publish quickly, from
	// 8 goroutines; then let them go.
	for _, p := range procs {
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	const n, size = 400, 4 << 10 // 1.6 MiB: more than flow control lets through
	c := dial(t, addr)
	var mu sync.Mutex
	payloads := make(map[uint64][]byte, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range n / 8 {
				data := make([]byte, size)
				for j := range data {
					data[j] = byte(rng.Uint32())
				}
				resp, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Data{Data: data}})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				payloads[resp.GetOffset()] = data
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publish: %v", err)
	}
	for _, p := range procs {
		if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}

	for _, p := range procs {
		largest := 0
		for i, ev := range p.messages(ctx, n) {
			m := ev.msg(t)
			if m.GetOffset() != uint64(i+1) || !bytes.Equal(m.GetData(), payloads[m.GetOffset()]) {
				t.Fatalf("%s: message %d has offset %d and %d bytes, want offset %d and the %d bytes published",
					p.name, i+1, m.GetOffset(), len(m.GetData()), i+1, size)
			}
			if ev.Batch < 1 {
				t.Fatalf("%s: message in a batch of %d", p.name, ev.Batch)
			}
			largest = max(largest, ev.Batch)
		}
		t.Logf("%s: %d messages, largest batch %d", p.name, n, largest)
		if largest < 2 {
			t.Errorf("%s: every response carried one message; want batches of several", p.name)
		}
	}
}

// TestResume cuts each subscriber's connection, through a proxy it connects
// by, publishes while it is cut off, and checks that the subscriber rejoins
// with its position and gets exactly the messages it missed; then cuts it
// again and gives it a new server, where its position means nothing, and
// checks that it says so (recovered: false).
func TestResume(t *testing.T) {
	t.Parallel()
	for _, l := range []lang{pythonLang, nodeLang} {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			l.require(t)
			testResume(t, l)
		})
	}
}

func testResume(t *testing.T, l lang) {
	addr := startServer(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	// The server the subscriber moves to at the end, started now so that it
	// outlives the subscriber.
	addr2 := startServer(t)
	px := faultproxy.Start(t, addr)
	r := newResumer(t, ctx, startSubscriber(t, ctx, l, px.Addr(), resumeRoom))

	first, last := r.publish(c, 5)
	r.expectMessages(first, last)

	// Cut the connection and hold new ones; publish while the subscriber is
	// cut off; then let it reconnect.
	px.Hold()
	px.Sever()
	r.expectDisconnected()
	missedFirst, missedLast := r.publish(c, 10)
	px.Resume("")
	join := r.expectRecovered(missedLast)
	r.expectMessages(missedFirst, missedLast) // exactly the missed ones: no duplicate of 1 to 5
	first, last = r.publish(c, 3)
	r.expectMessages(first, last)
	if n := px.Accepted(); n < 2 {
		t.Errorf("the proxy accepted %d connections; the subscriber did not reconnect through it", n)
	}

	// A new server knows nothing of the old epoch: the rejoin says
	// recovered: false, and the subscriber goes on from the room's newest
	// offset there.
	oldEpoch := join.Epoch
	px.Hold()
	px.Sever()
	r.sub.expect(ctx, "disconnected")
	c2 := dial(t, addr2)
	r.publish(c2, 2) // lost to the subscriber: it was not there
	px.Resume(addr2)
	join = r.expectRejoin()
	if join.Recovered || join.Epoch == oldEpoch || join.Offset != "2" {
		t.Fatalf("%s joined the new server with %s, want recovered false at offset 2 in a new epoch", r.sub.name, join.line)
	}
	first, last = r.publish(c2, 2)
	r.expectMessages(first, last)
}
