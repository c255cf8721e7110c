package client

// The queue of a Subscription: the events received and not yet taken by
// Next, guarded by Subscription.mu.

// push queues ev for the reader. Caller holds mu.
func (s *Subscription) push(ev *Event) {
	if s.closed {
		return
	}
	if s.qhead > 0 && len(s.queue) == cap(s.queue) && 2*s.qhead >= len(s.queue) {
		// Move what is left to the front rather than grow the array, once
		// half of it is taken: compacting a queue that stays near full on
		// every push would copy it over and over.
		n := copy(s.queue, s.queue[s.qhead:])
		clear(s.queue[n:])
		s.queue, s.qhead = s.queue[:n], 0
	}
	s.queue = append(s.queue, ev)
	if ev.Message != nil {
		s.qbytes += payloadSize(ev.Message)
	}
}

// pop takes the first event out of the queue, which is not empty. Caller
// holds mu. The queue's array is reused once it empties, as it mostly does
// when Next reads the stream itself, so that queueing costs no allocation.
func (s *Subscription) pop() *Event {
	ev := s.queue[s.qhead]
	s.queue[s.qhead] = nil
	s.qhead++
	if s.qhead == len(s.queue) {
		s.queue, s.qhead = s.queue[:0], 0
	}
	if ev.Message != nil {
		s.qbytes -= payloadSize(ev.Message)
	}
	return ev
}

// queued is the number of events in the queue. Caller holds mu.
func (s *Subscription) queued() int { return len(s.queue) - s.qhead }

// pushMessage queues ev, an event of a message, if the message is the
// next of a room the subscription is in, and moves the room's position to
// it. Caller holds mu.
func (s *Subscription) pushMessage(ev *Event) {
	m := ev.Message
	st := s.last
	if st == nil || st.name != m.GetRoom() {
		st = s.rooms[m.GetRoom()]
		s.last = st
	}
	if st == nil || !st.joined || m.GetOffset() <= st.pos.Offset {
		return // left, or already delivered
	}
	st.pos.Offset = m.GetOffset()
	s.push(ev)
}

// hasSpace reports whether the queue may take more messages. Caller holds mu.
func (s *Subscription) hasSpace() bool {
	return s.queued() < queueMessages && s.qbytes < queueBytes
}

// lowWater reports whether the queue holds at most half of what it may.
// A receiver that parked for want of space (hasSpace) is woken only once
// Next brings the queue down to it, not at each pop: a consumer catching up
// on a full queue would otherwise start a receiver for every response.
// Caller holds mu.
func (s *Subscription) lowWater() bool {
	return s.queued() <= queueMessages/2 && s.qbytes <= queueBytes/2
}

func payloadSize(m *Message) int { return len(m.GetData()) + len(m.GetText()) }
