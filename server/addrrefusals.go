package server

import "time"

// freeAddressRefusedCalls is how many calls the tap may refuse within a
// second over all the connections of one client address (see clientKey)
// before it pauses each connection refused further: freeRefusedCalls is a
// connection's, and a loop of refused Subscribe streams over 25
// connections of one address had 25 of those, 2,500 refusals a second, the
// garbage of whose stream set-ups set off a collection every second or so
// (issue #13 (d)). Twice a connection's, so that two proxies, or a proxy
// and its clients' direct connections, refusing lapsed credentials behind
// one address are not held up for them.
const freeAddressRefusedCalls = 2 * freeRefusedCalls

// minAddressRefusalSweep is the fewest addresses that addressRefusals
// holds before it drops those with no refusal within the last second.
const minAddressRefusalSweep = 256

// addressRefusals counts the calls refused before they ran (see
// abusiveRefusal) of each client address within a second. Its counters
// are dropped a second after their address's last refusal, once there are
// enough of them (minAddressRefusalSweep, then twice as many as were
// kept), so that it holds about as many as there are addresses refused
// within a second. It is not safe for concurrent use: the connection
// guard holds its lock around it.
type addressRefusals struct {
	byAddr  map[string]*refusals
	sweepAt int
}

// add counts one more refusal of the address whose clientKey is key, at
// now, and returns how many it had within its second.
func (a *addressRefusals) add(key []byte, now time.Time) int {
	r := a.byAddr[string(key)]
	if r == nil {
		if len(a.byAddr) >= a.sweepAt {
			a.sweep(now)
		}
		if a.byAddr == nil {
			a.byAddr = make(map[string]*refusals)
		}
		r = &refusals{since: now}
		a.byAddr[string(key)] = r
	}
	return r.add(now)
}

// sweep drops the counters whose second is over.
func (a *addressRefusals) sweep(now time.Time) {
	for k, r := range a.byAddr {
		if now.Sub(r.since) > time.Second {
			delete(a.byAddr, k)
		}
	}
	a.sweepAt = max(2*len(a.byAddr), minAddressRefusalSweep)
}
