package chaostest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// fault is a kind of fault a phase of the chaos test injects.
type fault int

const (
	cutClients      fault = iota // clients' connections cut at the proxy and sent to a random node
	killNode                     // a node closed at once; its clients resume on others
	killPubSub                   // CLIENT KILL TYPE pubsub: the nodes' PUB/SUB connections dropped
	pauseRedis                   // a shard stopped (SIGSTOP) for pauseFor
	restartAOF                   // a shard killed and restarted from its append-only file
	restartEmpty                 // a shard killed and restarted with nothing
	restoreSnapshot              // a shard saved, written to, killed and restarted from the save
	numFaults
)

var faultNames = [numFaults]string{"cut", "node-kill", "pubsub-kill", "pause", "restart-aof", "restart-empty", "old-snapshot"}

func (f fault) String() string { return faultNames[f] }

// restartsRedis reports whether f restarts a Redis process: every room of
// that shard then starts a new epoch, even when the data came back from
// disk, because the engine trusts no room state a process it did not load
// its scripts into wrote (see broker/redisengine/scripts.go). Only these
// phases may show subscribers signalled gaps.
func (f fault) restartsRedis() bool { return f >= restartAOF }

// pauseFor is how long a paused shard stays stopped: twice the nodes'
// Redis timeout, so that publishes fail and the PUB/SUB connections are
// found dead.
const pauseFor = 2 * redisTimeout

// action is one step of a fault, done once a phase has attempted at
// publishes. Its targets are drawn at plan time as a seed of their own, so
// that the plan is fixed by the test's seed alone.
type action struct {
	at    int64
	fault fault
	save  bool   // restoreSnapshot's first step: SAVE
	pick  uint64 // seeds the choice of targets
}

// phase is a fault and the publishes during which it strikes.
type phase struct {
	fault   fault
	actions []action // by at
	rooms   [][]int  // per publisher, the room index of each publish
}

// plan draws a run's phases: every fault once, in an order of the seed's,
// each striking at publish counts of the seed's, with a cut of clients'
// connections at a count of its own, before or after it.
func plan(rng *rand.Rand, publishers, perPublisher, rooms int) []phase {
	total := int64(publishers * perPublisher)
	at := func() int64 { return total/8 + rng.Int64N(total/2) } // early enough that publishes follow
	var phases []phase
	for _, i := range rng.Perm(int(numFaults)) {
		f := fault(i)
		ph := phase{fault: f}
		switch f {
		case cutClients, killPubSub:
			for range 3 {
				ph.actions = append(ph.actions, action{at: at(), fault: f, pick: rng.Uint64()})
			}
		case restoreSnapshot:
			save := at()
			ph.actions = append(ph.actions,
				action{at: save, fault: f, save: true, pick: rng.Uint64()},
				action{at: save + 1 + rng.Int64N(total/4), fault: f, pick: rng.Uint64()})
		default:
			ph.actions = append(ph.actions, action{at: at(), fault: f, pick: rng.Uint64()})
		}
		if f != cutClients { // and clients that reconnect around the fault
			ph.actions = append(ph.actions, action{at: at(), fault: cutClients, pick: rng.Uint64()})
		}
		slices.SortStableFunc(ph.actions, func(a, b action) int { return int(a.at - b.at) })
		for range publishers {
			rs := make([]int, perPublisher)
			for k := range rs {
				rs[k] = rng.IntN(rooms)
			}
			ph.rooms = append(ph.rooms, rs)
		}
		phases = append(phases, ph)
	}
	return phases
}

// describe lists the phase's actions for the test log.
func (ph phase) describe() string {
	var b strings.Builder
	for i, a := range ph.actions {
		if i > 0 {
			b.WriteString(", ")
		}
		if a.save {
			b.WriteString("SAVE")
		} else {
			b.WriteString(a.fault.String())
		}
		fmt.Fprintf(&b, "@%d", a.at)
	}
	return b.String()
}

// do carries out a, and says what it did.
func (c *cluster) do(a action) (string, error) {
	rng := rand.New(rand.NewPCG(a.pick, 1))
	switch a.fault {
	case cutClients:
		var moved []string
		live := c.live()
		for _, e := range c.endpoints {
			if rng.IntN(2) == 0 {
				to := live[rng.IntN(len(live))]
				e.move(to)
				moved = append(moved, fmt.Sprintf("%s→n%d", e.name, to.id))
			}
		}
		return "cut " + strings.Join(moved, " "), nil
	case killNode:
		return c.killNode(rng), nil
	case killPubSub:
		shard := rng.IntN(len(c.shards))
		n := c.shards[shard].KillPubSubClients(c.t)
		return fmt.Sprintf("killed %d PUB/SUB connections of shard %d", n, shard), nil
	case pauseRedis:
		shard := c.shards[rng.IntN(len(c.shards))]
		shard.Pause(c.t)
		timer := time.NewTimer(pauseFor) // the fault itself: how long Redis hangs
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-c.ctx.Done():
		}
		shard.Resume(c.t)
		return fmt.Sprintf("paused %s for %v", shard.Addr, pauseFor), c.ctx.Err()
	case restartAOF:
		c.restarted[aofShard] = true
		c.shards[aofShard].Restart(c.t)
		return fmt.Sprintf("restarted shard %d from its AOF", aofShard), nil
	case restartEmpty:
		shard := rng.IntN(len(c.shards))
		c.restarted[shard] = true
		s := c.shards[shard]
		s.Kill()
		// Whatever the shard persists goes: dump.rdb, and appendonlydir,
		// where Redis 7 keeps the AOF.
		for _, f := range []string{"dump.rdb", "appendonlydir"} {
			if err := os.RemoveAll(filepath.Join(s.Dir, f)); err != nil {
				return "", err
			}
		}
		s.Restart(c.t)
		return fmt.Sprintf("restarted shard %d empty", shard), nil
	case restoreSnapshot:
		s := c.shards[snapshotShard]
		if a.save {
			if err := s.Do(c.t, "SAVE").Error(); err != nil {
				return "", fmt.Errorf("SAVE: %w", err)
			}
			return fmt.Sprintf("saved shard %d", snapshotShard), nil
		}
		c.restarted[snapshotShard] = true
		s.Restart(c.t)
		return fmt.Sprintf("restarted shard %d from the older snapshot", snapshotShard), nil
	}
	return "", errors.New("unknown fault")
}

// killNode closes a live node at once and sends its clients to the others,
// each to one of the seed's choosing; a new node takes its place in the
// cluster, for later faults to use.
func (c *cluster) killNode(rng *rand.Rand) string {
	live := c.live()
	victim := live[rng.IntN(len(live))]
	var on []*endpoint
	for _, e := range c.endpoints {
		if e.node == victim {
			e.proxy.Hold() // its clients' reconnects wait for their new node
			on = append(on, e)
		}
	}
	victim.srv.Close()
	victim.dead = true
	others := c.live()
	var moved []string
	for _, e := range on {
		e.node = others[rng.IntN(len(others))]
		e.proxy.Resume(e.node.addr)
		moved = append(moved, fmt.Sprintf("%s→n%d", e.name, e.node.id))
	}
	n := c.startNode()
	return fmt.Sprintf("killed n%d (%s), started n%d", victim.id, strings.Join(moved, " "), n.id)
}
