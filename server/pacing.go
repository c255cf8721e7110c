package server

import "time"

// A connection's writer sends each ready stream one response per pass, with
// whatever the stream's rooms had for it. When messages arrive spread over
// many rooms, each pass finds one or two per stream, and each response costs
// both sides grpc-go's per-message work (SendMsg, its metrics wrapper and
// the transport's frame on the server; the receive path on the client) for
// a message or two.
//
// So a writer that is busy lets messages gather before its next pass: a
// pass begins no sooner than a hold after the previous one began. The hold
// follows the load, measured as how late the writer runs once poked (its
// wake delay, averaged): holdPerDelay times that average, at most the
// server's maxWriteHold. On an idle machine a writer runs within
// microseconds of its poke, and its holds are shorter than the time between
// passes: nothing waits. When the machine is short of CPU, wake-ups come
// milliseconds late and holds reach their bound, so each response carries
// several messages, which is what spends less CPU per delivery on both
// sides.
//
// A message is never held for more than maxWriteHold beyond its writer's
// wake delay: a pass waits for the hold measured from when the previous
// pass began, so one after a quiet spell of maxWriteHold goes at once.
// Streams with a greeting or a command reply to send are not held.
//
// Nor is a writer whose passes serve few streams (fewer than
// holdFromResponses responses a pass, on average): the gain of a hold is
// one pass and its wake-up shared by many streams' responses, and a
// connection of one or two streams, such as a service's own subscriber,
// would only wait.
//
// Nor is a writer whose holds would gather little: holding pays only when
// each held response carries clearly more than the one message that woke
// its stream. A load signal from wake delays cannot tell that: one publish
// to a large room pokes every connection's writer at once, so on a machine
// of two cores the last ones wake milliseconds late although it is mostly
// idle, and a stream that gets a message every 10 ms would have each one
// held for nothing. So the pacer also estimates how fast messages come to
// the streams it serves (its responses' messages over the time each
// stream had to gather them, both averaged over passes), and holds only
// when the hold is long enough to gather holdGathers messages per response
// at that rate, and a third of the bound would be too (gatherWithin). The
// rate is measured on every pass, held or not, so a writer that stopped
// holding sees within a few passes when messages come faster again, with
// no probe holds to delay a paced stream's messages; before its first
// measured pass a writer holds, so a burst of load holds from its first
// passes.
//
// Nor is a writer whose passes already send large responses (at least
// gatheredEnough buffers, about as many messages, per response, averaged
// over its recent passes, so that the short pass after a long one does
// not count alone): a hold can only add latency there, and a publisher that waits
// for its subscribers (a request and its reply over rooms) would wait for
// it on every round trip.

// holdPerDelay is how many times its average wake delay a busy writer
// lets messages gather. It is large because a hold below the time between
// passes changes nothing: the few-ms wake delays of a saturated machine
// must give holds of tens of ms to double the messages per response.
const holdPerDelay = 32

// gatheredEnough is the buffers per response (a message's entry is one, a
// large message's two, and each response's batch one header) from which a
// pass has gathered enough: the next is not held. Holds give rooms of 10
// about 8 messages per response; one busy stream gathers hundreds by
// itself.
const gatheredEnough = 32

// holdGathers is the messages per response a hold must be expected to
// gather for the writer to hold: two, the message that woke the stream and
// at least one more, so that a held response carries at least twice what an
// unheld one would; below that a hold adds latency for a saving of less
// than half the per-response work. Held passes of rooms of 10 gather about
// 8, of one room of 1000 at saturation about 25.
const holdGathers = 2

// gatherWithin is the fraction of the bound, as its inverse, within which
// a hold must be expected to gather holdGathers messages, however late
// wake-ups come. Without it a stream with a message every 10 ms is held
// whenever the wake delay says 20 ms: that gathers two messages, but
// doubles the latency of every message on a machine mostly idle, and the
// wake delays of fan-out bursts say 20 ms often. A third: with the default
// bound of 50 ms, a stream must get 120 messages a second to be held;
// those of rooms of 10 and of one room of 1000 at saturation get five to
// ten times that.
const gatherWithin = 3

// gatherWeight is the weight, as a power of two, of the averages of the
// arrival rate's messages and time against each new pass's. They start at
// the first pass measured; before it, the writer holds.
const gatherWeight = 3

// holdFromResponses is the responses a pass sends, on average, from which
// its writer may hold the next.
const holdFromResponses = 4

// wakeDelayWeight is the weight, as a power of two, of the average wake
// delay against each new one: 8 wake-ups are 66% of it.
const wakeDelayWeight = 3

// DefaultMaxWriteHold is WithMaxWriteHold's default.
const DefaultMaxWriteHold = 50 * time.Millisecond

// passPacer decides how long a connection's writer holds before a pass. It
// is the connection's, kept across writers; only its current writer uses
// it, under the connection's mu for woke and unlocked for the rest (the
// current writer alone runs passes).
type passPacer struct {
	max      int64 // the longest hold, in ns; 0: never hold
	delay    int64 // average wake delay, in ns
	lastPass int64 // when the last pass began, on the server's clock
	passed   bool  // a pass began: lastPass is set
	perResp  int   // buffers per response, averaged over passes that sent any, in 1/256ths
	perPass  int   // responses per pass, averaged over passes that sent any, in 1/256ths
	// The arrival rate: over the responses of streams served within the
	// bound before, their messages and the time they had to gather (see
	// served), summed over a pass and averaged over passes; streamNs is 0
	// before the first measured. passMsgs and passNs are the current pass's
	// sums.
	msgs, streamNs   float64
	passMsgs, passNs int64
}

// woke records a wake-up that came delay ns after the writer's poke.
func (p *passPacer) woke(delay int64) {
	p.delay += (max(delay, 0) - p.delay) >> wakeDelayWeight
}

// holdFor returns how long a pass due at now should wait: until the hold
// after the previous pass began has passed; 0 or less for no wait.
func (p *passPacer) holdFor(now int64) time.Duration {
	if !p.passed || p.max <= 0 || p.perResp >= gatheredEnough<<8 || p.perPass < holdFromResponses<<8 {
		return 0
	}
	hold := min(p.max, holdPerDelay*p.delay)
	if !p.gathers(hold) {
		return 0
	}
	return time.Duration(p.lastPass + hold - now)
}

// gathers reports whether a pass hold ns after the previous one began is
// expected to collect holdGathers messages per response, and one held
// gatherWithin times less than the bound would too, at the averaged rate.
func (p *passPacer) gathers(hold int64) bool {
	if p.streamNs == 0 {
		return true
	}
	perStreamNs := p.msgs / p.streamNs
	return perStreamNs*float64(hold) >= holdGathers && perStreamNs*float64(p.max) >= gatherWithin*holdGathers
}

// begin records that a pass began at now.
func (p *passPacer) begin(now int64) {
	p.lastPass, p.passed = now, true
	p.passMsgs, p.passNs = 0, 0 // what a retired writer's pass measured went unsent
}

// served records a response of bufs buffers (its batch header and one per
// message, two for a large one, which counts twice: large messages gather
// enough anyway) to a stream the pass that began last serves, whose
// previous response's pass began at *at, and sets *at to this pass. Its
// messages gathered since then: a span measured per stream, as a pass's
// own would count a stream that it did not serve and the previous pass
// did, such as one that the fan-out of a publish readied just after the
// pass began, as gathering in a moment what took the time between
// publishes. A stream not served within two bounds says nothing of the
// rate: it was quiet. (Within one would not do: a pass held for the whole
// bound begins a bound or more after the last, so none of its streams
// would count, and the rate measured before holds reached the bound would
// keep them there however slowly messages came.)
func (p *passPacer) served(at *int64, bufs int) {
	if since := p.lastPass - *at; *at != 0 && since > 0 && since/2 < p.max {
		p.passMsgs += int64(bufs - 1)
		p.passNs += since
	}
	*at = p.lastPass
}

// collected records what the pass collected: bufs buffers for responses
// responses, and the rate its served calls measured.
func (p *passPacer) collected(responses, bufs int) {
	if responses <= 0 {
		return
	}
	p.perResp += (bufs<<8/responses - p.perResp) >> wakeDelayWeight
	p.perPass += (responses<<8 - p.perPass) >> wakeDelayWeight
	if p.passNs == 0 {
		return
	}
	msgs, streamNs := float64(p.passMsgs), float64(p.passNs)
	p.passMsgs, p.passNs = 0, 0
	if p.streamNs == 0 {
		p.msgs, p.streamNs = msgs, streamNs
		return
	}
	p.msgs += (msgs - p.msgs) / (1 << gatherWeight)
	p.streamNs += (streamNs - p.streamNs) / (1 << gatherWeight) // both > 0: never back to 0
}

// now reads the server's monotonic clock, in ns since it started.
func (s *Server) now() int64 {
	if s.cfg.clock != nil {
		return s.cfg.clock()
	}
	return int64(time.Since(s.started))
}

// hold waits as long as c's pacer says before w's pass, unless a ready
// session has a greeting or commands to answer, or the server drains (then
// what is left goes at once); then it notes that the pass begins. A writer
// that just woke takes the time it woke at for now: reading the clock was
// nearly all a hold that does not wait cost (1% of the server's CPU in a
// profile of BenchmarkPublishServe/open).
func (w *connWriter) hold() {
	c := w.c
	now := w.wokeAt
	if now == 0 {
		now = c.srv.now()
	}
	if d := c.pacer.holdFor(now); d > 0 && !c.srv.isDraining() && !c.readyBusy() {
		c.srv.writes.holds.Add(1)
		if hook := c.srv.cfg.holdHook; hook != nil {
			hook(d)
		}
		w.holdTimer.wait(d, c.srv.drain, c.srv.stopped)
		start := now
		now = c.srv.now()
		c.srv.writes.held.Add(now - start)
	}
	c.pacer.begin(now)
}

// readyBusy reports whether a ready session needs a whole turn: its reply
// is not to be held.
func (c *outConn) readyBusy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ss := range c.ready.items[c.ready.head:] {
		if ss.busy() {
			return true
		}
	}
	return false
}
