package broker

import "context"

// Wakes holds back the wake-ups of a run of publishes until Flush: a
// publisher that sequences many messages at once (a batch) wakes each
// parked subscriber after the last of them rather than after the first, so
// that whoever serves the subscribers finds them all ready at once and
// collects more messages per subscriber and per pass.
//
// Subscribers are still unparked under their room's lock, as the publish
// that concerns them is made visible; only the call of their notify func
// (or the signal on Wake) waits for Flush, which makes it with no lock held.
// A subscriber held back is not woken again by a later publish before
// Flush (it is no longer parked), so holding back adds no wake-ups; nor
// does it change what Collect returns, or when a subscriber is found
// lagging.
//
// The zero value is ready to use. A Wakes is not safe for concurrent use:
// the publishes that hold back into it (see WithWakes) and Flush must be
// made by one goroutine at a time, and whoever holds back must Flush,
// including when it panics, or the subscribers held back stay parked until
// something else wakes them.
type Wakes struct {
	subs []*Subscriber // in the order their rooms woke them; one may appear once per room
}

// WithWakes returns a context under which PublishWith holds the wake-ups of
// its publishes back in w instead of making them, until w.Flush. A publish
// that an engine sequences wakes its subscribers when the engine delivers
// it, so w is left alone.
func WithWakes(ctx context.Context, w *Wakes) context.Context {
	return &wakesContext{Context: ctx, w: w}
}

// wakesContext is a context carrying a Wakes: one allocation, as
// ownerContext.
type wakesContext struct {
	context.Context
	w *Wakes
}

type wakesKey struct{}

func (c *wakesContext) Value(key any) any {
	if key == (wakesKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// wakesOf returns ctx's Wakes, or nil when ctx carries none.
func wakesOf(ctx context.Context) *Wakes {
	if c, ok := ctx.Value(wakesKey{}).(*wakesContext); ok {
		return c.w
	}
	return nil
}

// Len is how many wake-ups w holds back.
func (w *Wakes) Len() int { return len(w.subs) }

// Flush makes the wake-ups w holds back, in the order they were held, and
// empties w for the next run. Call it with no broker lock held (notify
// funcs may take their owner's locks).
func (w *Wakes) Flush() {
	for i, s := range w.subs {
		w.subs[i] = nil
		s.notify()
	}
	w.subs = w.subs[:0]
}

// hold takes over the wake-up of s. Caller holds s's room's lock.
func (w *Wakes) hold(s *Subscriber) { w.subs = append(w.subs, s) }
