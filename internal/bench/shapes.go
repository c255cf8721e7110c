package bench

import (
	"fmt"
	"slices"

	"github.com/roomcast/roomcast/client"
)

// Scenarios: what a shape of a run is for.
const (
	// ScenarioFanout is Config's subscribers at each room size of the sweep,
	// with every variant.
	ScenarioFanout = "fanout"
	// ScenarioSmallRooms is rooms of SmallRoomSize, Config's subscribers
	// over Config's connections, at saturation with streaming publishers.
	ScenarioSmallRooms = "small-rooms"
	// ScenarioPublishOnly is one subscriber of one room, PublishOnlyPayload
	// bytes, at saturation: the cost of a publish, unary and streaming.
	ScenarioPublishOnly = "publish-only"
)

// Publish modes of roomcast publishers.
const (
	// PublishUnary is client.Client.Publish, UnaryInFlight calls at once.
	PublishUnary = "unary"
	// PublishStream is a client.Publisher on PublishStream, its window
	// (client.DefaultMaxInFlight) of messages in flight.
	PublishStream = "stream"
)

// UnaryInFlight is how many unary Publish calls one roomcast publisher has
// in flight at most, pipelined on its connection.
const UnaryInFlight = 16

// natsFlushEvery is how many messages a NATS publisher publishes between
// flushes in ScenarioPublishOnly: as many as a client.Publisher keeps in
// flight, so that NATS's publisher too learns the server has its messages.
const natsFlushEvery = client.DefaultMaxInFlight

// SmallRoomSize is the room size of ScenarioSmallRooms.
const SmallRoomSize = 10

// PublishOnlyPayload is the payload of ScenarioPublishOnly.
const PublishOnlyPayload = 64

// shape is a set of trials of one arrangement of subscribers: rooms of
// perRoom subscribers over conns connections, measured in each kind with
// each setup.
type shape struct {
	scenario string
	rooms    int
	perRoom  int
	conns    int
	payload  int
	kinds    []string
	setups   []setup
}

// subscribers is how many subscriber streams the shape has.
func (s shape) subscribers() int { return s.rooms * s.perRoom }

// shapeLabel names a shape as it is run: rooms × subscribers per room over
// connections.
func shapeLabel(rooms, perRoom, conns int) string {
	if conns == 1 {
		return fmt.Sprintf("%d × %d over 1 connection", rooms, perRoom)
	}
	return fmt.Sprintf("%d × %d over %d connections", rooms, perRoom, conns)
}

func (s shape) label() string { return shapeLabel(s.rooms, s.perRoom, s.conns) }

// sweepShape is the fanout shape of one room size: with Sizes, Subscribers
// spread over Subscribers/size rooms of size (one room when size is
// larger); without, Subscribers over Rooms rooms.
func (c Config) sweepShape(size int) (rooms, perRoom int) {
	if len(c.Sizes) == 0 {
		return c.Rooms, c.Subscribers / c.Rooms
	}
	return max(1, c.Subscribers/size), size
}

// shapes returns the shapes a run measures, in order: the fanout sweep,
// then the small rooms and publish-only scenarios when asked for and the
// roomcast variant is measured.
func (c Config) shapes() []shape {
	engines := c.engines()
	var out []shape
	for _, size := range c.sizes() {
		rooms, per := c.sweepShape(size)
		out = append(out, shape{
			scenario: ScenarioFanout, rooms: rooms, perRoom: per, conns: min(c.Connections, rooms*per),
			payload: c.Payload, kinds: c.kinds(), setups: setupsOf(c.Variants, engines, []string{c.Publish}),
		})
	}
	var extra []string // the variants the extra scenarios compare
	for _, v := range []string{VariantRoomcast, VariantNATS} {
		if slices.Contains(c.Variants, v) {
			extra = append(extra, v)
		}
	}
	if !slices.Contains(extra, VariantRoomcast) {
		return out
	}
	main := []string{KindSaturation}
	if c.Rate > 0 {
		main[0] = KindRate
	}
	if c.SmallRooms {
		rooms := max(1, c.Subscribers/SmallRoomSize)
		out = append(out, shape{
			scenario: ScenarioSmallRooms, rooms: rooms, perRoom: SmallRoomSize, conns: min(c.Connections, rooms*SmallRoomSize),
			payload: c.Payload, kinds: main, setups: setupsOf(extra, engines, []string{PublishStream}),
		})
	}
	if c.PublishOnly {
		out = append(out, shape{
			scenario: ScenarioPublishOnly, rooms: 1, perRoom: 1, conns: 1,
			payload: PublishOnlyPayload, kinds: main, setups: setupsOf(extra, engines, []string{PublishUnary, PublishStream}),
		})
	}
	return out
}

// publishLanes is how many messages a roomcast publisher in mode has in
// flight at most.
func publishLanes(mode string) int {
	if mode == PublishStream {
		return client.DefaultMaxInFlight
	}
	return UnaryInFlight
}

// ParsePublish checks a publish mode.
func ParsePublish(s string) (string, error) {
	switch s {
	case PublishUnary, PublishStream:
		return s, nil
	}
	return "", fmt.Errorf("unknown publish mode %q: want %s or %s", s, PublishUnary, PublishStream)
}
