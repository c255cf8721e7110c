package chaostest

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// seedsEnv names other seeds to run instead of defaultSeeds, comma
// separated: ROOMCAST_CHAOS_SEEDS=42 go test ./internal/chaostest -run TestChaos -v
const seedsEnv = "ROOMCAST_CHAOS_SEEDS"

// defaultSeeds are the seeds run by default; -short runs the first only.
var defaultSeeds = []uint64{1, 2, 3}

// The shape of a run.
const (
	numNodes           = 3
	numSubscribers     = 6
	roomsPerSubscriber = 3
	numPublishers      = 3
	perPublisher       = 40 // publishes of each publisher in each phase
	quiesceWithin      = 20 * time.Second
)

// rooms are three on each shard by the engine's hash of their names (the
// run checks that both shards hold rooms).
var rooms = []string{"chaos.a", "chaos.b", "chaos.c", "chaos.g", "chaos.j", "chaos.k"}

func seeds(t *testing.T) []uint64 {
	v := os.Getenv(seedsEnv)
	if v == "" {
		if testing.Short() {
			return defaultSeeds[:1]
		}
		return defaultSeeds
	}
	var out []uint64
	for f := range strings.SplitSeq(v, ",") {
		s, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", seedsEnv, v, err)
		}
		out = append(out, s)
	}
	return out
}

// TestChaos runs a cluster of three nodes on two Redis shards through every
// fault, one per phase, in an order and at publish counts drawn from a
// fixed seed, while publishers publish numbered messages and subscribers
// of the Go client, behind fault proxies, count what they receive. After
// each phase every acknowledged message must have reached every subscriber
// of its room, or be covered by a Gap the subscriber was given; no
// subscriber may ever see a message twice, out of order or after a gap it
// was not told of; and gaps are allowed only in rooms of a shard that the
// phase restarted.
func TestChaos(t *testing.T) {
	for _, seed := range seeds(t) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("seed %d failed; run it alone with %s=%d go test -race ./internal/chaostest -run TestChaos -v", seed, seedsEnv, seed)
				}
			})
			runChaos(t, seed)
		})
	}
}

// phaseRow is a phase's line of the counts table.
type phaseRow struct {
	phase    phase
	attempts int
	acked    int64
	counts   Counts // summed over the subscribers
}

func runChaos(t *testing.T, seed uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	rng := rand.New(rand.NewPCG(seed, 0x6368616f73))
	c := startCluster(t, ctx, numNodes, fmt.Sprint("chaos", seed))
	var pubs []*publisher
	for i := range numPublishers {
		pubs = append(pubs, c.publisher(i, c.nodes[i%numNodes]))
	}
	last := c.publisher(numPublishers, c.nodes[0]) // publishes each phase's last messages
	c.mapRooms(last, rooms)
	for i := range c.shards {
		if !slices.Contains(slices.Collect(maps.Values(c.shardOf)), i) {
			t.Fatalf("no room on shard %d (%v): pick other names", i, c.shardOf)
		}
	}
	var subs []*subscriber
	for i := range numSubscribers {
		var rs []string
		for _, k := range rng.Perm(len(rooms))[:roomsPerSubscriber] {
			rs = append(rs, rooms[k])
		}
		subs = append(subs, c.subscribe(i, c.nodes[i%numNodes], rs))
	}
	phases := plan(rng, numPublishers, perPublisher, len(rooms))

	var rows []phaseRow
	for i, ph := range phases {
		before, gaps := total(subs), roomGaps(subs)
		clear(c.restarted)
		acked := c.runPhase(i, ph, pubs)
		err := c.quiesce(i, last, subs)
		d := total(subs).Sub(before)
		rows = append(rows, phaseRow{ph, numPublishers * perPublisher, acked, d})
		if err != nil {
			logTables(t, seed, rows, subs)
			t.Fatal(err)
		}
		if d.Duplicated != 0 || d.Reordered != 0 || d.Silent != 0 {
			t.Errorf("phase %d (%v): %d duplicated, %d reordered, %d silent gaps; want none", i, ph.fault, d.Duplicated, d.Reordered, d.Silent)
		}
		for k, n := range roomGaps(subs) {
			if shard := c.shardOf[k.room]; n > gaps[k] && !c.restarted[shard] {
				t.Errorf("phase %d (%v): subscriber %d had %d signalled gaps in %s, whose shard %d lost nothing", i, ph.fault, k.sub, n-gaps[k], k.room, shard)
			}
		}
	}
	logTables(t, seed, rows, subs)
}

// runPhase publishes the phase's messages and injects its fault as the
// publish counts come; it returns once every publisher is done, with how
// many publishes were acknowledged.
func (c *cluster) runPhase(i int, ph phase, pubs []*publisher) int64 {
	c.t.Helper()
	counts := make([]int, len(pubs))
	for p := range counts {
		counts[p] = perPublisher
	}
	prog := newProgress()
	done, acked := runPublishers(c, pubs, counts, func(p, k int) string { return rooms[ph.rooms[p][k]] }, prog)
	finished := false
	defer func() {
		if !finished { // a fatal failure: the publishers stop with the run
			c.cancel()
		}
		<-done
	}()
	for _, a := range ph.actions {
		if err := prog.reach(c.ctx, a.at, done); err != nil {
			c.t.Fatalf("phase %d (%v): %v", i, ph.fault, err)
		}
		at := prog.n.Load()
		what, err := c.do(a)
		if err != nil {
			c.t.Fatalf("phase %d (%v): %v", i, ph.fault, err)
		}
		c.t.Logf("phase %d (%v) at publish %d: %s", i, ph.fault, at, what)
	}
	select {
	case <-done:
	case <-c.ctx.Done():
		c.t.Fatalf("phase %d (%v): publishers not done: %v", i, ph.fault, c.ctx.Err())
	}
	finished = true
	return acked.Load()
}

// subRoom is a room of a subscriber.
type subRoom struct {
	sub  int
	room string
}

// roomGaps returns how many Gap events each subscriber had in each room.
func roomGaps(subs []*subscriber) map[subRoom]int {
	out := make(map[subRoom]int)
	for _, s := range subs {
		for _, room := range s.rooms {
			out[subRoom{s.id, room}] = s.tally.Gaps(room)
		}
	}
	return out
}

// quiesce publishes a last message to every room, acknowledged, and waits
// until every subscriber has every acknowledged message of its rooms or a
// Gap covering it: the last message comes after any Gap of the phase, so
// the phase's counts are then complete.
func (c *cluster) quiesce(phase int, last *publisher, subs []*subscriber) error {
	c.t.Helper()
	for _, room := range rooms {
		if err := last.publishAcked(c, room); err != nil {
			return fmt.Errorf("phase %d: the last publish to %s: %w", phase, room, err)
		}
	}
	deadline := time.Now().Add(quiesceWithin)
	for {
		var missing []string
		for _, s := range subs {
			if err := s.ended(); err != nil {
				return fmt.Errorf("phase %d: %v", phase, err)
			}
			for _, room := range s.rooms {
				m, w := s.tally.Check(c.ledger, room)
				if len(w) > 0 {
					return fmt.Errorf("phase %d: subscriber %d got %s with other payloads than acknowledged at %v", phase, s.id, room, w)
				}
				if len(m) > 0 {
					missing = append(missing, fmt.Sprintf("subscriber %d, %s: %d missing from %v (last delivered %v)", s.id, room, len(m), m[0], s.tally.Last(room)))
				}
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) || !c.pause(10*time.Millisecond) { // polling, within a deadline
			return fmt.Errorf("phase %d: acknowledged messages neither delivered nor covered by a gap after %v:\n%s", phase, quiesceWithin, strings.Join(missing, "\n"))
		}
	}
}

// pause waits d, or less if the run's context ends first: false then.
func (c *cluster) pause(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// total sums the subscribers' counts.
func total(subs []*subscriber) Counts {
	var sum Counts
	for _, s := range subs {
		sum = sum.Add(s.tally.Counts())
	}
	return sum
}

// logTables logs the run's counts per phase and per subscriber.
func logTables(t *testing.T, seed uint64, rows []phaseRow, subs []*subscriber) {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(&b, "seed %d, per phase (subscribers summed):\n", seed)
	fmt.Fprintln(w, "phase\tfault\tattempted\tacked\tdelivered\tduplicated\treordered\tsilent gaps\tsignalled gaps\treconnects\t")
	for i, r := range rows {
		k := r.counts
		fmt.Fprintf(w, "%d\t%v\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", i, r.phase.fault, r.attempts, r.acked,
			k.Delivered, k.Duplicated, k.Reordered, k.Silent, k.Signalled, k.Reconnects)
	}
	w.Flush()
	fmt.Fprintf(&b, "per subscriber:\n")
	fmt.Fprintln(w, "subscriber\trooms\tdelivered\tduplicated\treordered\tsilent gaps\tsignalled gaps\treconnects\t")
	for _, s := range subs {
		k := s.tally.Counts()
		fmt.Fprintf(w, "%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", s.id, strings.Join(s.rooms, ","),
			k.Delivered, k.Duplicated, k.Reordered, k.Silent, k.Signalled, k.Reconnects)
	}
	w.Flush()
	t.Logf("phases: %s\n%s", describePhases(rows), b.String())
}

func describePhases(rows []phaseRow) string {
	var parts []string
	for i, r := range rows {
		parts = append(parts, fmt.Sprintf("%d %v [%s]", i, r.phase.fault, r.phase.describe()))
	}
	return strings.Join(parts, "; ")
}
