package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// RedisInfo is the Redis of a run's EngineRedis trials.
type RedisInfo struct {
	Version string   `json:"version"` // redis_version of INFO server
	Addrs   []string `json:"addrs"`   // one per shard
	Started bool     `json:"started"` // by the run, on loopback, and stopped at its end; false: --redis-addr
	Prefix  string   `json:"prefix"`  // of every key and channel of the run
}

// ClusterStats is what a trial of a roomcast variant measured of its nodes
// (one in memory) and, on Redis, of Redis.
type ClusterStats struct {
	Nodes       int    `json:"nodes"`
	PublishNode string `json:"publish_node"` // the node publishers publish to: an index, or all
	// CoresPerNode is the parent process's CPU seconds per second of the
	// window divided by Nodes: a node's share of the machine, taking the
	// nodes as equal (they are in one process: getrusage cannot tell
	// them apart). Zero when the server's CPU was not measured.
	CoresPerNode float64 `json:"cores_per_node,omitempty"`
	// CrossNode is the publish-to-delivery latency of messages received
	// on another node than the one they were published to, SameNode on the
	// same one; both absent with one node.
	CrossNode *LatencyStats `json:"cross_node_latency,omitempty"`
	SameNode  *LatencyStats `json:"same_node_latency,omitempty"`
	Redis     *RedisStats   `json:"redis,omitempty"` // absent in memory
}

// RedisStats is Redis's cost over a trial's measurement window, from the
// deltas of used_cpu_sys + used_cpu_user (INFO cpu) of every server. With
// --redis-addr it includes whatever else those servers did meanwhile.
type RedisStats struct {
	CPUSeconds       float64   `json:"cpu_seconds"`        // all servers
	ServerCPUSeconds []float64 `json:"server_cpu_seconds"` // each server's, in Addrs order
	Cores            float64   `json:"cores"`              // CPUSeconds per second of the window
	// CPUUSPerPublish is CPUSeconds, in microseconds, over the messages
	// published in the window.
	CPUUSPerPublish float64 `json:"cpu_us_per_publish"`
}

// ClusterPoint is the medians of a point's ClusterStats; figures the
// trials lack are absent.
type ClusterPoint struct {
	Nodes                int      `json:"nodes"`
	PublishNode          string   `json:"publish_node"`
	CoresPerNode         *float64 `json:"cores_per_node,omitempty"`
	CrossNodeP50US       *float64 `json:"cross_node_latency_p50_us,omitempty"`
	CrossNodeP99US       *float64 `json:"cross_node_latency_p99_us,omitempty"`
	SameNodeP50US        *float64 `json:"same_node_latency_p50_us,omitempty"`
	SameNodeP99US        *float64 `json:"same_node_latency_p99_us,omitempty"`
	RedisCores           *float64 `json:"redis_cores,omitempty"`
	RedisCPUUSPerPublish *float64 `json:"redis_cpu_us_per_publish,omitempty"`
}

// clusterPoint is the medians of the passing trials' ClusterStats, or nil
// if they have none.
func clusterPoint(ok []Trial) *ClusterPoint {
	for _, t := range ok {
		if t.Cluster == nil {
			return nil
		}
	}
	c := ok[0].Cluster
	p := &ClusterPoint{Nodes: c.Nodes, PublishNode: c.PublishNode}
	get := func(f func(*ClusterStats) (float64, bool)) *float64 {
		v := make([]float64, 0, len(ok))
		for _, t := range ok {
			x, has := f(t.Cluster)
			if !has {
				return nil
			}
			v = append(v, x)
		}
		m := medianOf(v)
		return &m
	}
	p.CoresPerNode = get(func(c *ClusterStats) (float64, bool) { return c.CoresPerNode, c.CoresPerNode > 0 })
	lat := func(l func(*ClusterStats) *LatencyStats, q func(*LatencyStats) float64) *float64 {
		return get(func(c *ClusterStats) (float64, bool) {
			if s := l(c); s != nil && s.Count > 0 {
				return q(s), true
			}
			return 0, false
		})
	}
	cross := func(c *ClusterStats) *LatencyStats { return c.CrossNode }
	same := func(c *ClusterStats) *LatencyStats { return c.SameNode }
	p50 := func(s *LatencyStats) float64 { return s.P50US }
	p99 := func(s *LatencyStats) float64 { return s.P99US }
	p.CrossNodeP50US, p.CrossNodeP99US = lat(cross, p50), lat(cross, p99)
	p.SameNodeP50US, p.SameNodeP99US = lat(same, p50), lat(same, p99)
	p.RedisCores = get(func(c *ClusterStats) (float64, bool) {
		return redisField(c, func(r *RedisStats) float64 { return r.Cores })
	})
	p.RedisCPUUSPerPublish = get(func(c *ClusterStats) (float64, bool) {
		return redisField(c, func(r *RedisStats) float64 { return r.CPUUSPerPublish })
	})
	return p
}

func redisField(c *ClusterStats, f func(*RedisStats) float64) (float64, bool) {
	if c.Redis == nil {
		return 0, false
	}
	return f(c.Redis), true
}

// writeClusterHeader says, when a run measured Redis, what it ran on and
// how the server's CPU is divided among the nodes.
func writeClusterHeader(w io.Writer, r *Report) {
	if r.Redis == nil {
		return
	}
	c, rd := r.Config, r.Redis
	how := "given by --redis-addr"
	if rd.Started {
		how = "started by this run, on loopback, nothing persisted"
	}
	pub := "publishers publish to node " + c.PublishNodes
	if c.PublishNodes == PublishAllNodes {
		pub = "publisher p publishes to node p mod nodes"
	}
	fmt.Fprintf(w, "redis trials: %d roomcast nodes in this process, one broker on Redis %s at %s (%s), key prefix %s; subscriber connection i on node i mod %d; %s\n",
		c.Nodes, rd.Version, strings.Join(rd.Addrs, ","), how, rd.Prefix, c.Nodes, pub)
	fmt.Fprintln(w, "per node: every delivery is made by one node, so the parent's CPU over all nodes' deliveries is the nodes' CPU per delivery (weighted by deliveries, the publishing node's work included); node cores is the parent's CPU per second over the nodes")
}

// writeClusterText prints the nodes' and Redis's figures of every roomcast
// point, when the run measured Redis.
func writeClusterText(w io.Writer, r *Report) {
	if r.Redis == nil {
		return
	}
	fmt.Fprintln(w, "\nnodes and Redis (x-node: subscribers on another node than the publisher's):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "shape\tkind\tvariant\tnodes\tpub node\tpublished/s\tdeliveries/s\tCPU ns/deliv\tnode cores\tx-node p50 µs\tx-node p99 µs\tsame-node p50 µs\tsame-node p99 µs\tredis cores\tredis µs/pub\t")
	opt := func(v *float64, format string) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf(format, *v)
	}
	for _, p := range r.Points {
		c := p.Cluster
		if c == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			p.Shape, p.Kind, pointSeries(p), c.Nodes, c.PublishNode, p.PublishedPerSec, p.DeliveredPerSec,
			opt(p.CPUNsPerDelivery, "%.0f"), opt(c.CoresPerNode, "%.2f"),
			opt(c.CrossNodeP50US, "%.0f"), opt(c.CrossNodeP99US, "%.0f"), opt(c.SameNodeP50US, "%.0f"), opt(c.SameNodeP99US, "%.0f"),
			opt(c.RedisCores, "%.2f"), opt(c.RedisCPUUSPerPublish, "%.1f"))
	}
	tw.Flush()
}
