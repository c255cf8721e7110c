package server

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomcast/roomcast/broker"
)

// brokerCollector exposes a broker's counters and the server's own, read
// when scraped so the hot path pays for nothing but its own atomic adds.
type brokerCollector struct {
	b                                            *broker.Hub
	detachedCount, panicCount                    *atomic.Uint64
	published, encoded, delivered, lagged, rooms *prometheus.Desc
	retained, reclaimed                          *prometheus.Desc
	detached, panics                             *prometheus.Desc
	deduplicated, keys                           *prometheus.Desc
	floodCount                                   *atomic.Uint64 // connections closed for rapid reset
	floods                                       *prometheus.Desc
	commandFloodCount                            *atomic.Uint64 // streams ended for commands past the rate limits
	commandFloods                                *prometheus.Desc
	pausedEndCount                               *atomic.Uint64 // streams ended past the paused readers' limits
	pausedEnds                                   *prometheus.Desc
	pausedCount                                  *atomic.Int64 // readers paused now
	paused                                       *prometheus.Desc
}

func newBrokerCollector(b *broker.Hub, detached, panics, floods, commandFloods, pausedEnds *atomic.Uint64, paused *atomic.Int64) *brokerCollector {
	return &brokerCollector{
		pausedCount:       paused,
		paused:            prometheus.NewDesc("roomcast_paused_streams", "Subscribe streams whose readers are paused now, their commands left unread: after a refused command, or waiting behind replies their clients do not read (at most --max-paused-streams).", nil, nil),
		pausedEndCount:    pausedEnds,
		pausedEnds:        prometheus.NewDesc("roomcast_paused_stream_ends_total", "Subscribe streams ended with RESOURCE_EXHAUSTED for a command refused by the rate limits, or waiting behind replies their clients did not read, while the server had --max-paused-streams, or the stream's credential --max-paused-streams-per-credential, streams paused so already.", nil, nil),
		commandFloodCount: commandFloods,
		commandFloods:     prometheus.NewDesc("roomcast_command_flood_ends_total", "Subscribe streams ended with RESOURCE_EXHAUSTED for sending commands past the rate limits (--command-rate, --credential-command-rate) faster than they were refused: more than --max-refused-commands refused within a second.", nil, nil),
		b:                 b,
		detachedCount:     detached,
		panicCount:        panics,
		floodCount:        floods,
		floods:            prometheus.NewDesc("roomcast_reset_flood_closes_total", "Client connections closed for resetting streams (RST_STREAM frames) faster than --stream-reset-rate and --stream-reset-burst allow: HTTP/2 rapid reset.", nil, nil),
		panics:            prometheus.NewDesc("roomcast_panics_total", "Panics recovered in a call's handler or the decoding of its request, a subscriber stream's reader or connection writer (each ended only the call or stream it was serving, with INTERNAL, and is logged with its stack), or in the server's sweeper, health watch or the broker's janitor (which went on).", nil, nil),
		detached:          prometheus.NewDesc("roomcast_stream_detaches_total", "Times a subscriber stream's write blocked its connection's shared writer for 5 to 10 ms (its client was not reading) and the stream was moved to a goroutine of its own until it caught up.", nil, nil),
		published:         prometheus.NewDesc("roomcast_messages_published_total", "Messages accepted by Publish and PublishStream.", nil, nil),
		encoded:           prometheus.NewDesc("roomcast_messages_encoded_total", "Messages encoded: one per message sequenced into a room, whatever the number of subscribers.", nil, nil),
		delivered:         prometheus.NewDesc("roomcast_messages_delivered_total", "Messages written to subscriber streams.", nil, nil),
		lagged:            prometheus.NewDesc("roomcast_slow_consumers_total", "Subscriber streams cut off as slow consumers: behind the backlog limit, or a write stalled past the write timeout.", nil, nil),
		rooms:             prometheus.NewDesc("roomcast_rooms", "Rooms in memory.", nil, nil),
		deduplicated:      prometheus.NewDesc("roomcast_publishes_deduplicated_total", "Publishes whose idempotency key was already used: answered with the first offset, appending nothing.", nil, nil),
		keys:              prometheus.NewDesc("roomcast_idempotency_keys", "Idempotency keys the rooms remember.", nil, nil),
		retained:          prometheus.NewDesc("roomcast_retained_bytes", "Bytes of messages and presence events held by every room, bounded by the retained byte budget.", nil, nil),
		reclaimed:         prometheus.NewDesc("roomcast_rooms_reclaimed_total", "Idle rooms whose history was dropped to stay within the retained byte budget.", nil, nil),
	}
}

func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.published
	ch <- c.encoded
	ch <- c.delivered
	ch <- c.lagged
	ch <- c.rooms
	ch <- c.retained
	ch <- c.reclaimed
	ch <- c.detached
	ch <- c.panics
	ch <- c.deduplicated
	ch <- c.keys
	ch <- c.floods
	ch <- c.commandFloods
	ch <- c.pausedEnds
	ch <- c.paused
}

func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.b.Stats()
	ch <- prometheus.MustNewConstMetric(c.published, prometheus.CounterValue, float64(st.Published))
	ch <- prometheus.MustNewConstMetric(c.encoded, prometheus.CounterValue, float64(st.Encoded))
	ch <- prometheus.MustNewConstMetric(c.delivered, prometheus.CounterValue, float64(st.Delivered))
	ch <- prometheus.MustNewConstMetric(c.lagged, prometheus.CounterValue, float64(st.Lagged))
	ch <- prometheus.MustNewConstMetric(c.rooms, prometheus.GaugeValue, float64(st.Rooms))
	ch <- prometheus.MustNewConstMetric(c.retained, prometheus.GaugeValue, float64(st.Retained))
	ch <- prometheus.MustNewConstMetric(c.reclaimed, prometheus.CounterValue, float64(st.Reclaimed))
	ch <- prometheus.MustNewConstMetric(c.detached, prometheus.CounterValue, float64(c.detachedCount.Load()))
	ch <- prometheus.MustNewConstMetric(c.panics, prometheus.CounterValue, float64(c.panicCount.Load()+st.Panics))
	ch <- prometheus.MustNewConstMetric(c.deduplicated, prometheus.CounterValue, float64(st.Deduplicated))
	ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(st.Keys))
	ch <- prometheus.MustNewConstMetric(c.floods, prometheus.CounterValue, float64(c.floodCount.Load()))
	ch <- prometheus.MustNewConstMetric(c.commandFloods, prometheus.CounterValue, float64(c.commandFloodCount.Load()))
	ch <- prometheus.MustNewConstMetric(c.pausedEnds, prometheus.CounterValue, float64(c.pausedEndCount.Load()))
	ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, float64(c.pausedCount.Load()))
}
