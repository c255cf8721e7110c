package chaostest

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

// A seed fixes the whole plan; every fault strikes once per run, while
// publishes are still to come; seeds differ.
func TestPlanIsFixedBySeed(t *testing.T) {
	const pubs, per, nrooms = 3, 40, 6
	draw := func(seed uint64) []phase { return plan(rand.New(rand.NewPCG(seed, 0)), pubs, per, nrooms) }
	one := draw(1)
	if !reflect.DeepEqual(one, draw(1)) {
		t.Fatal("two plans of seed 1 differ")
	}
	if reflect.DeepEqual(one, draw(2)) {
		t.Fatal("seeds 1 and 2 drew the same plan")
	}
	seen := map[fault]bool{}
	for _, ph := range one {
		seen[ph.fault] = true
		for _, a := range ph.actions {
			if (a.fault != ph.fault && a.fault != cutClients) || a.at < 1 || a.at >= pubs*per {
				t.Errorf("phase %v: action %+v, want this fault within the phase's %d publishes", ph.fault, a, pubs*per)
			}
		}
		if len(ph.rooms) != pubs || len(ph.rooms[0]) != per {
			t.Errorf("phase %v: rooms drawn for %d publishers", ph.fault, len(ph.rooms))
		}
	}
	if len(one) != int(numFaults) || len(seen) != int(numFaults) {
		t.Errorf("%d phases of %d faults, want each of the %d once", len(one), len(seen), numFaults)
	}
}
