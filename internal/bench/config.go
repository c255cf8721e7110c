// Package bench measures roomcast's fan-out against the same server encoding
// each message once per subscriber and against NATS core, side by side on
// one machine with one harness.
//
// The parent process (Run) hosts the server under test, so that its CPU time
// (getrusage RUSAGE_SELF) and heap are the server's alone. A worker process
// (ServeWorker, the same binary re-executed) hosts every publisher and
// subscriber and talks to the parent over JSON lines on its stdin and
// stdout. Each subscriber checks that it gets every message of its room, in
// order; publishers keep at most a window of messages ahead of the slowest
// subscriber of a room, so that a saturated server is measured without any
// subscriber being cut off.
package bench

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Variants the benchmark knows.
const (
	// VariantRoomcast is the roomcast server as built: each message encoded
	// once and the same bytes written to every subscriber stream.
	VariantRoomcast = "roomcast"
	// VariantEncodeEach is the same server with
	// broker.WithEncodePerSubscriber(true): each message encoded once per
	// subscriber, as a per-subscriber send loop does.
	VariantEncodeEach = "encode-each"
	// VariantNATS is NATS core: an embedded nats-server, one subject per room.
	VariantNATS = "nats"
	// VariantWatch is VariantRoomcast with its subscribers on the web
	// listener: Watch calls over the Connect protocol in binary (watch.go).
	// In memory only.
	VariantWatch = "watch"
	// VariantRawDecode is the roomcast server as built, with subscribers on
	// the generated stubs and a hand-written decoder that reads only what
	// the checks need, allocating nothing per message: what the server can
	// do for the leanest client. An extra: no headline figure uses it.
	VariantRawDecode = "roomcast-rawdecode"
)

// AllVariants are the variants there are, in report order.
var AllVariants = []string{VariantRoomcast, VariantEncodeEach, VariantNATS, VariantRawDecode}

// DefaultVariants are the variants a run measures by default: subscribers
// on the client package (roomcast, encode-each) and on nats.go.
var DefaultVariants = []string{VariantRoomcast, VariantEncodeEach, VariantNATS}

// roomcastServer reports whether variant measures a roomcast server.
func roomcastServer(variant string) bool { return variant != VariantNATS }

// OptInVariants are measured only when named (--variants roomcast,watch).
var OptInVariants = []string{VariantWatch}

// knownVariant reports whether v is a variant the benchmark can measure,
// and if not, the error saying so.
func knownVariant(v string) error {
	if slices.Contains(AllVariants, v) || slices.Contains(OptInVariants, v) {
		return nil
	}
	return fmt.Errorf("unknown variant %q: want some of %s", v, strings.Join(append(slices.Clone(AllVariants), OptInVariants...), ","))
}

// Engines the roomcast variants can keep their rooms in.
const (
	// EngineMemory is the default: one server, rooms in its memory.
	EngineMemory = "memory"
	// EngineRedis is Config.Nodes servers in the parent process sharing
	// rooms through Redis (broker/redisengine), as one broker.
	EngineRedis = "redis"
)

// AllEngines are the engines there are, in report order.
var AllEngines = []string{EngineMemory, EngineRedis}

// PublishAllNodes is the Config.PublishNodes that spreads the publishers
// over the nodes: publisher p publishes to node p modulo Config.Nodes.
const PublishAllNodes = "all"

// Kinds of trial.
const (
	// KindSaturation publishes as fast as the flow-control window allows.
	KindSaturation = "saturation"
	// KindRate publishes Config.Rate messages per second.
	KindRate = "rate"
	// KindPaced publishes Config.Paced / room size messages per second, so
	// that every room size is measured at the same deliveries per second.
	KindPaced = "paced"
)

// minPayload is the smallest payload: the publish time, sequence number and
// publisher id every message carries.
const minPayload = 20

// maxPayload keeps a message under the server's default message limit.
const maxPayload = 512 << 10

// Config is what one run measures. DefaultConfig and QuickConfig fill it in.
type Config struct {
	Server      string  // a roomcast server to target instead of in-process ones; "" to run them in-process
	Subscribers int     // subscriber streams, when Sizes is empty
	Connections int     // client connections the subscribers are spread over
	Rooms       int     // rooms the subscribers are spread over, when Sizes is empty
	Publishers  int     // publishers, each on a connection of its own
	Payload     int     // payload bytes per message
	Rate        float64 // messages published per second, over all publishers; 0 for saturation
	Paced       float64 // also run each point at this many deliveries per second; 0 for none
	Window      int     // flow control: messages a room may be ahead of its slowest subscriber
	// StreamWindow, when not 0, is a fixed HTTP/2 flow-control window in
	// bytes for each roomcast subscriber stream (16 times that per
	// connection), which turns off grpc-go's bandwidth-estimation pings; 0
	// keeps grpc-go's dynamic window.
	StreamWindow int
	Warmup       time.Duration // publishing before the measurement window
	Duration     time.Duration // the measurement window
	Reps         int           // repetitions of every trial
	Variants     []string      // what to measure, from AllVariants
	// Sizes are the room sizes to sweep: at each, Subscribers spread over
	// Subscribers/size rooms (one room when size is larger); empty for
	// Subscribers over Rooms.
	Sizes []int
	// Publish is how the fanout's roomcast publishers publish:
	// PublishUnary or PublishStream.
	Publish string
	// SmallRooms adds ScenarioSmallRooms; PublishOnly adds
	// ScenarioPublishOnly.
	SmallRooms, PublishOnly bool
	Out                     string // directory for bench.json and bench.svg; "" for none
	CPUProfile              string // write a CPU profile of the server per variant here; "" for none
	// WorkerCPUProfile is CPUProfile for the worker process (the
	// publishers and subscribers), during the same trials; "" for none.
	// It needs a worker process (WorkerCommand).
	WorkerCPUProfile string

	// Engine is where the roomcast variants keep rooms: EngineMemory,
	// EngineRedis, or both comma-separated, measured interleaved. NATS has
	// no engine: it is measured once whatever this says.
	Engine string
	// Nodes is how many roomcast servers an EngineRedis trial runs in the
	// parent process, sharing one Redis key space; subscriber connection
	// i goes to node i modulo Nodes. EngineMemory trials have one.
	Nodes int
	// PublishNodes is the node every publisher publishes to, as an index
	// ("0", the default), or PublishAllNodes.
	PublishNodes string
	// RedisAddr is the Redis of EngineRedis trials, HOST:PORT, or several
	// comma-separated, one per shard; "" starts RedisShards redis-servers
	// of the run's own on loopback and stops them at its end.
	RedisAddr string
	// RedisShards is how many redis-servers to start when RedisAddr is "".
	RedisShards int

	// WorkerCommand starts the worker process: the program and its
	// arguments, such as the roomcast-bench binary and "worker". Empty runs
	// the worker in the parent process instead, which is only fit for
	// tests: the server's CPU and memory then include the worker's.
	WorkerCommand []string

	hooks workerHooks // for tests: faults injected into an in-process worker
}

// DefaultConfig is a full run: 1000 subscribers of one room over 50
// connections, 1 KiB messages, unary publishes, saturation and paced at
// 100,000 deliveries/s; then 100 rooms of 10 over 50 connections at
// saturation with streaming publishers; then publish-only, unary and
// streaming.
func DefaultConfig() Config {
	return Config{
		Subscribers:  1000,
		Connections:  50,
		Rooms:        1,
		Publishers:   1,
		Payload:      1024,
		Paced:        100_000,
		Window:       256,
		Warmup:       2 * time.Second,
		Duration:     10 * time.Second,
		Reps:         1,
		Variants:     slices.Clone(DefaultVariants),
		Publish:      PublishUnary,
		SmallRooms:   true,
		PublishOnly:  true,
		Engine:       EngineMemory,
		Nodes:        1,
		PublishNodes: "0",
		RedisShards:  1,
	}
}

// QuickConfig is a run of well under a minute, for CI: small rooms and short
// windows.
func QuickConfig() Config {
	c := DefaultConfig()
	c.Subscribers = 100
	c.Connections = 10
	c.Sizes = []int{10, 100}
	c.Paced = 20_000
	c.Warmup = 250 * time.Millisecond
	c.Duration = time.Second
	return c
}

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	switch {
	case c.Rooms < 1:
		return fmt.Errorf("rooms must be at least 1, got %d", c.Rooms)
	case len(c.Sizes) == 0 && c.Subscribers < c.Rooms:
		return fmt.Errorf("subscribers (%d) must be at least rooms (%d): every room needs a subscriber", c.Subscribers, c.Rooms)
	case c.Connections < 1:
		return fmt.Errorf("connections must be at least 1, got %d", c.Connections)
	case c.Publishers < 1:
		return fmt.Errorf("publishers must be at least 1, got %d", c.Publishers)
	case c.Payload < minPayload || c.Payload > maxPayload:
		return fmt.Errorf("payload must be %d to %d bytes, got %d", minPayload, maxPayload, c.Payload)
	case c.Rate < 0 || c.Paced < 0:
		return errors.New("rates must not be negative")
	case c.StreamWindow != 0 && (c.StreamWindow < 64<<10 || c.StreamWindow > 16<<20):
		return fmt.Errorf("stream window must be 0 (dynamic) or 64 KiB to 16 MiB, got %d bytes", c.StreamWindow)
	case c.Window < 1 || c.Window > 1000:
		return fmt.Errorf("window must be 1 to 1000 messages (under the server's backlog of 1024), got %d", c.Window)
	case c.Warmup < 0 || c.Duration <= 0:
		return errors.New("warm-up must not be negative and duration must be positive")
	case c.Reps < 1:
		return fmt.Errorf("repetitions must be at least 1, got %d", c.Reps)
	case len(c.Variants) == 0:
		return errors.New("no variant to measure")
	}
	if _, err := ParsePublish(c.Publish); err != nil {
		return err
	}
	for _, v := range c.Variants {
		if err := knownVariant(v); err != nil {
			return err
		}
		if c.Server != "" && v != VariantRoomcast && v != VariantRawDecode {
			return fmt.Errorf("variant %q needs an in-process server: with --server only %q and %q can be measured", v, VariantRoomcast, VariantRawDecode)
		}
	}
	for _, s := range c.Sizes {
		if s < 1 {
			return fmt.Errorf("room sizes must be at least 1, got %d", s)
		}
	}
	return c.validateEngines()
}

// validateEngines reports the first thing wrong with the engine settings.
func (c Config) validateEngines() error {
	engines, err := ParseEngines(c.Engine)
	if err != nil {
		return err
	}
	redis := slices.Contains(engines, EngineRedis)
	switch {
	case c.Nodes < 1:
		return fmt.Errorf("nodes must be at least 1, got %d", c.Nodes)
	case c.Nodes > 1 && !redis:
		return fmt.Errorf("%d nodes need --engine redis: in memory a server is alone", c.Nodes)
	case c.Server != "" && redis:
		return errors.New("--engine redis needs in-process servers: it cannot be measured with --server")
	case c.RedisAddr != "" && !redis:
		return errors.New("a Redis address needs --engine redis")
	case c.RedisShards < 1:
		return fmt.Errorf("redis shards must be at least 1, got %d", c.RedisShards)
	case c.RedisShards > 1 && c.RedisAddr != "":
		return errors.New("redis shards are started by the run: with a Redis address, give one per shard instead")
	}
	if c.PublishNodes != PublishAllNodes {
		if n, err := strconv.Atoi(c.PublishNodes); err != nil || n < 0 || n >= c.Nodes {
			return fmt.Errorf("publish nodes must be a node index under %d or %q, got %q", c.Nodes, PublishAllNodes, c.PublishNodes)
		}
	}
	for _, a := range c.redisAddrs() {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("redis address %q: %v", a, err)
		}
	}
	return nil
}

// ParseEngines parses a comma-separated list of engines into report order.
func ParseEngines(s string) ([]string, error) {
	var out []string
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if !slices.Contains(AllEngines, e) {
			return nil, fmt.Errorf("unknown engine %q: want some of %s", e, strings.Join(AllEngines, ","))
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no engine given")
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(AllEngines, a) - slices.Index(AllEngines, b) })
	return out, nil
}

// engines returns the engines to measure; call it only on a valid Config.
// workerProcess reports whether the worker runs in a process of its own,
// whose CPU and runtime are its alone.
func (c Config) workerProcess() bool { return len(c.WorkerCommand) > 0 }

func (c Config) engines() []string {
	e, _ := ParseEngines(c.Engine)
	return e
}

// redisAddrs returns the Redis servers RedisAddr names.
func (c Config) redisAddrs() []string {
	var out []string
	for _, a := range strings.Split(c.RedisAddr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// publishNode is spec.PublishNode for a trial on engine: the index of the
// node every publisher publishes to, or -1 to spread them over the nodes.
func (c Config) publishNode(engine string) int {
	if engine != EngineRedis {
		return 0
	}
	if c.PublishNodes == PublishAllNodes {
		return -1
	}
	n, _ := strconv.Atoi(c.PublishNodes)
	return n
}

// sizes returns the room sizes to measure, smallest first.
func (c Config) sizes() []int {
	if len(c.Sizes) == 0 {
		return []int{c.Subscribers / c.Rooms}
	}
	s := slices.Clone(c.Sizes)
	slices.Sort(s)
	return slices.Compact(s)
}

// kinds returns the kinds of trial each point is measured in.
func (c Config) kinds() []string {
	k := []string{KindSaturation}
	if c.Rate > 0 {
		k[0] = KindRate
	}
	if c.Paced > 0 {
		k = append(k, KindPaced)
	}
	return k
}

// window is the flow-control window for payload bytes: the configured one,
// cut so that a room's unacknowledged messages stay within half the
// server's default backlog of 4 MiB.
func (c Config) window(payload int) int {
	const backlogBytes = 4 << 20
	return max(1, min(c.Window, backlogBytes/2/(payload+128)))
}

// ParseVariants parses a comma-separated list of variants.
func ParseVariants(s string) ([]string, error) {
	var out []string
	for _, v := range strings.Split(s, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if err := knownVariant(v); err != nil {
			return nil, err
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no variant given")
	}
	return out, nil
}
