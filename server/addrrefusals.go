package server

import "time"

// minAddressRefusalSweep is the fewest addresses that addressRefusals
// holds before it drops those whose second is over.
const minAddressRefusalSweep = 256

// addressRefusals counts the calls refused before they ran (see
// abusiveRefusal) of each client address within a second, for
// --address-refused-calls (DefaultAddressRefusedCalls): with an allowance
// for each connection alone, a loop of refused Subscribe streams over 25
// connections of one address was refused 2,500 times a second, and the
// garbage of those stream set-ups set off a collection every second or so
// (issue #13 (d)). A counter's second starts at its address's first
// refusal; once the map holds minAddressRefusalSweep counters, then twice
// as many as the last sweep kept, a new address sweeps out those whose
// second is over, so that it holds at most about twice as many as there
// are addresses refused within a second. Every refusal that counts
// toward a connection's --max-refused-calls counts here too, those whose
// calls are not paused as well (a stream refused in its handler past its
// credential's streams, one ended past the paused readers' cap, a web
// Watch): what is paused is the tap's next refusal. It is not safe for
// concurrent use: the connection guard holds its lock around it.
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
