// Package brokertest is the contract every hub configuration keeps, whatever
// engine sequences its rooms: one suite, parameterised by a factory, that the
// in-memory hub runs today and an external engine's tests run against their
// own hubs.
//
// The suite holds an engine to what a client can observe through the hub's
// public API, and never to when: after Publish returns, a subscriber may see
// the message only a little later. So every case waits for the deliveries it
// expects, as a connection's writer does (Collect, then Park and wait on the
// wake-up), up to a deadline; and it asserts that nothing more arrived only
// deterministically, by publishing a sentinel afterwards and checking that
// the sentinel is the next thing seen, never by sleeping.
package brokertest

import (
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
)

// Factory makes a hub for one test with opts applied; it registers its
// cleanup with t (closing the hub, and whatever engine it runs on).
//
// Cases run in parallel and each makes its own hubs, reusing room names such
// as "r": a factory whose engine keeps state outside the process must give
// every hub it makes a namespace of its own (a key prefix, say), so that two
// hubs never share a room.
type Factory func(t testing.TB, opts ...broker.Option) *broker.Hub

// timeout bounds every wait of the suite: a delivery that has not come by
// then is taken as never coming.
const timeout = 10 * time.Second

// group is a concern of the contract and its cases.
type group struct {
	name  string
	cases []testCase
}

// testCase is one independent case: it makes its own hubs with newHub.
type testCase struct {
	name string
	run  func(t *testing.T, newHub Factory)
}

// Run runs the contract suite against hubs made by newHub, each concern and
// each case as a subtest (t.Run), in parallel: no two cases share a hub.
func Run(t *testing.T, newHub Factory) {
	for _, g := range []group{
		{"ordering", orderingCases},
		{"resume", resumeCases},
		{"history", historyCases},
		{"presence", presenceCases},
		{"limits", limitCases},
		{"idempotency", idempotencyCases},
		{"closing", closingCases},
	} {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t, newHub)
				})
			}
		})
	}
}
