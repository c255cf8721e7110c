package server

// Control frames: WINDOW_UPDATE and PING. A client sends them as it reads
// what the server writes: grpcio a WINDOW_UPDATE for each message it
// reads, grpc-go a BDP PING on the DATA it gets and WINDOW_UPDATEs as its
// windows drain, a browser as its page reads a body. grpc-go answers a
// PING with a write and hands every WINDOW_UPDATE to its writer, and
// counts neither: its keepalive policy strikes only a PING that comes
// when the server has written nothing since the last. A flood of both, as
// fast as the server read them, with no call, cost 8.8 s of CPU in 5 and
// the bystander's p99 went up 90 times (issue #13 (o)); net/http's HTTP/2
// server on the web listener, as much.
//
// Pacing them all at the request frame rate would slow a fast reader's
// deliveries: its WINDOW_UPDATEs are what let the server write more. So
// each connection earns an allowance from what the server writes it,
// read off the write skim (serverends.go): answerFrames for each DATA
// frame (a stream's WINDOW_UPDATE, the connection's, a BDP PING) and one
// for each PING the server sends (its answer), beyond answersAtOpen.
// Only the control frames past it are counted as request frames and
// paced (readpace.go), in the address's bucket. The allowance banks at
// most maxAnswers, so that a connection that has been read from for
// hours cannot spend it in one flood. Without the write skim (the header
// limit off) control frames are not counted, as before.

const (
	// answerFrames is how many control frames each DATA frame the server
	// writes allows.
	answerFrames = 3
	// answersAtOpen is a connection's allowance before the server writes:
	// the WINDOW_UPDATE a client sends after its preface, its keepalive
	// PINGs of the first minutes, the answers to the server's SETTINGS.
	answersAtOpen = 32
	// maxAnswers bounds what an allowance banks.
	maxAnswers = 4096
)

// controlFrame counts a WINDOW_UPDATE or PING frame the client sent
// against its allowance, and past it as a request frame to pace.
func (c *resetConn) controlFrame() {
	if !c.skimsWrites() {
		return
	}
	if c.answers <= 0 {
		c.answers = min(c.answers+c.served.Swap(0), maxAnswers)
	}
	if c.answers > 0 {
		c.answers--
		return
	}
	c.frames++
}

// skimsWrites reports whether the connection's writes are skimmed: with
// the header limit on, and on the web listener once HTTP/2's preface came.
func (c *resetConn) skimsWrites() bool {
	return c.guard.followsMessages() && (!c.web || c.h2.Load())
}
