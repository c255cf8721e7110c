// Package serveconfig is what "roomcast serve" builds its server from, with
// serve's defaults, so that roomcast-bench's server under test is built the
// same way. The serve command binds its flags to a Limits that starts as
// Defaults; the bench takes Defaults and states what it changes.
package serveconfig

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/server"
)

// Defaults of serve that have no constant in server or broker.
const (
	DefaultPublishRate  = 10_000 // publishes per credential per second
	DefaultPublishBurst = 1000
)

// Limits are serve's limits, rates and retention: every server and broker
// option it sets from a flag but the engine, transport, credentials,
// logging and tracing. A Limits is a plain value, not safe for concurrent
// mutation.
type Limits struct {
	MaxMessageBytes               int
	BacklogMessages               int
	BacklogBytes                  int
	MaxRoomsPerSession            int
	PublishRate                   float64
	PublishBurst                  int
	PublishByteRate               int
	PublishByteBurst              int
	CommandRate                   float64
	CommandBurst                  int
	StreamResetRate               float64
	StreamResetBurst              int
	MaxStreams                    int
	MaxStreamsPerConnection       uint
	MaxRooms                      int
	MaxHeaderBytes                int
	MaxConns                      int
	MaxConnIdle                   time.Duration
	AuthTimeout                   time.Duration
	AcceptPaceAfter               int
	AcceptPace                    float64
	AcceptPaceBurst               int
	MaxPendingPerAddress          int
	RefusedHold                   time.Duration
	RefusedHoldMax                int
	MaxCredStreams                int
	MaxCredPublishStreams         int
	MaxPaused                     int
	MaxCredPaused                 int
	ReadRate                      float64
	ReadBurst                     int
	ReadByteRate                  int
	ReadByteBurst                 int
	AnonPublishRate               float64
	AnonPublishBurst              int
	CredCommandRate               float64
	CredCommandBurst              int
	MaxRefusedCommands            int
	MaxRefusedCalls               int
	AddressRefusedCalls           int
	AbusePenalty                  time.Duration
	MaxRetainedBytes              int64
	MaxRoomsPerCredential         int
	MaxRetainedBytesPerCredential int64
	HistoryMessages               int
	HistoryTTL                    time.Duration
	WriteTimeout                  time.Duration
	MaxWriteHold                  time.Duration
	AuthLogRate                   float64
	StreamWindow                  int // HTTP/2 receive windows; StreamWindow 0: grpc-go's dynamic ones
	ConnWindow                    int
	MaxUnfinishedBytes            int64 // over the server; 0: not bounded
	MaxUnfinishedBytesPerAddress  int64
	UnfinishedReadRate            int64 // bytes a second; 0: not paced
	RequestFrameRate              int   // a connection's frames a second; 0: not paced
	LargeRequestTurn              int   // the smallest request decoded in a turn; 0: none is
}

// Defaults are serve's defaults. MaxRetainedBytes depends on the machine
// (DefaultRetainedBytes).
func Defaults() Limits {
	return Limits{
		MaxMessageBytes:              server.DefaultMaxMessageBytes,
		BacklogMessages:              broker.DefaultBacklogMessages,
		BacklogBytes:                 broker.DefaultBacklogBytes,
		MaxRoomsPerSession:           server.DefaultMaxRoomsPerSession,
		PublishRate:                  DefaultPublishRate,
		PublishBurst:                 DefaultPublishBurst,
		PublishByteRate:              server.DefaultPublishByteRate,
		PublishByteBurst:             server.DefaultPublishByteBurst,
		CommandRate:                  server.DefaultCommandRate,
		CommandBurst:                 server.DefaultCommandBurst,
		StreamResetRate:              server.DefaultStreamResetRate,
		StreamResetBurst:             server.DefaultStreamResetBurst,
		MaxStreams:                   server.DefaultMaxStreams,
		MaxStreamsPerConnection:      server.DefaultMaxStreamsPerConnection,
		MaxRooms:                     broker.DefaultMaxRooms,
		MaxHeaderBytes:               server.DefaultMaxHeaderBytes,
		MaxConns:                     server.DefaultMaxConnections,
		MaxConnIdle:                  server.DefaultMaxConnectionIdle,
		AuthTimeout:                  server.DefaultAuthTimeout,
		AcceptPaceAfter:              server.DefaultAcceptPaceAfter,
		AcceptPace:                   server.DefaultAcceptPace,
		AcceptPaceBurst:              server.DefaultAcceptPaceBurst,
		MaxPendingPerAddress:         server.DefaultMaxPendingPerAddress,
		RefusedHold:                  server.DefaultRefusedHold,
		MaxCredStreams:               server.DefaultMaxStreamsPerCredential,
		MaxCredPublishStreams:        server.DefaultMaxPublishStreamsPerCredential,
		MaxPaused:                    server.DefaultMaxPausedStreams,
		MaxCredPaused:                server.DefaultMaxPausedStreamsPerCredential,
		ReadRate:                     server.DefaultReadRate,
		ReadBurst:                    server.DefaultReadBurst,
		ReadByteRate:                 server.DefaultReadByteRate,
		ReadByteBurst:                server.DefaultReadByteBurst,
		AnonPublishRate:              server.DefaultAnonymousPublishRate,
		AnonPublishBurst:             server.DefaultAnonymousPublishBurst,
		CredCommandRate:              server.DefaultCredentialCommandRate,
		CredCommandBurst:             server.DefaultCredentialCommandBurst,
		MaxRefusedCommands:           server.DefaultMaxRefusedCommands,
		MaxRefusedCalls:              server.DefaultMaxRefusedCalls,
		AddressRefusedCalls:          server.DefaultAddressRefusedCalls,
		AbusePenalty:                 server.DefaultAbusePenalty,
		MaxRetainedBytes:             DefaultRetainedBytes(),
		HistoryMessages:              broker.DefaultHistoryMessages,
		HistoryTTL:                   broker.DefaultHistoryTTL,
		WriteTimeout:                 server.DefaultWriteTimeout,
		MaxWriteHold:                 server.DefaultMaxWriteHold,
		AuthLogRate:                  server.DefaultAuthFailureLogRate,
		StreamWindow:                 server.DefaultStreamWindow,
		ConnWindow:                   server.DefaultConnWindow,
		MaxUnfinishedBytes:           server.DefaultMaxUnfinishedBytes,
		MaxUnfinishedBytesPerAddress: server.DefaultMaxUnfinishedBytesPerAddress,
		UnfinishedReadRate:           server.DefaultUnfinishedReadRate,
		RequestFrameRate:             server.DefaultRequestFrameRate,
		LargeRequestTurn:             server.DefaultLargeRequestTurn,
	}
}

// ServerOptions are l as server options. MaxStreamsPerConnection must be
// 1 to math.MaxUint32: the caller checks it (serve as a usage error).
func (l Limits) ServerOptions() []server.Option {
	return []server.Option{
		server.WithMaxMessageBytes(l.MaxMessageBytes),
		server.WithMaxRoomsPerSession(l.MaxRoomsPerSession),
		server.WithPublishRate(l.PublishRate, l.PublishBurst),
		server.WithPublishByteRate(float64(l.PublishByteRate), l.PublishByteBurst),
		server.WithCommandRate(l.CommandRate, l.CommandBurst),
		server.WithStreamResetRate(l.StreamResetRate, l.StreamResetBurst),
		server.WithMaxStreams(l.MaxStreams),
		server.WithMaxStreamsPerConnection(uint32(l.MaxStreamsPerConnection)),
		server.WithWriteTimeout(l.WriteTimeout),
		server.WithMaxWriteHold(l.MaxWriteHold),
		server.WithAuthFailureLogRate(l.AuthLogRate),
		server.WithMaxHeaderBytes(l.MaxHeaderBytes),
		server.WithMaxConnections(l.MaxConns),
		server.WithMaxConnectionIdle(l.MaxConnIdle),
		server.WithAuthTimeout(l.AuthTimeout),
		server.WithAcceptPace(l.AcceptPaceAfter, l.AcceptPace, l.AcceptPaceBurst),
		server.WithMaxPendingPerAddress(l.MaxPendingPerAddress),
		server.WithRefusedHold(l.RefusedHold, l.RefusedHoldMax),
		server.WithMaxStreamsPerCredential(l.MaxCredStreams),
		server.WithMaxPublishStreamsPerCredential(l.MaxCredPublishStreams),
		server.WithMaxPausedStreams(l.MaxPaused, l.MaxCredPaused),
		server.WithReadRate(l.ReadRate, l.ReadBurst),
		server.WithReadByteRate(float64(l.ReadByteRate), l.ReadByteBurst),
		server.WithAnonymousPublishRate(l.AnonPublishRate, l.AnonPublishBurst),
		server.WithCredentialCommandRate(l.CredCommandRate, l.CredCommandBurst),
		server.WithMaxRefusedCommands(l.MaxRefusedCommands),
		server.WithMaxRefusedCalls(l.MaxRefusedCalls),
		server.WithAddressRefusedCalls(l.AddressRefusedCalls),
		server.WithAbusePenalty(l.AbusePenalty),
		server.WithReceiveWindows(l.StreamWindow, l.ConnWindow),
		server.WithMaxUnfinishedBytes(l.MaxUnfinishedBytes, l.MaxUnfinishedBytesPerAddress),
		server.WithUnfinishedReadRate(l.UnfinishedReadRate),
		server.WithRequestFrameRate(l.RequestFrameRate),
		server.WithLargeRequestTurns(l.LargeRequestTurn),
		server.WithBrokerOptions(
			broker.WithBacklog(l.BacklogMessages, l.BacklogBytes),
			broker.WithHistory(l.HistoryMessages, l.HistoryTTL),
			broker.WithMaxRooms(l.MaxRooms),
			broker.WithMaxRetainedBytes(l.MaxRetainedBytes),
			broker.WithOwnerQuotas(l.MaxRoomsPerCredential, l.MaxRetainedBytesPerCredential),
		),
	}
}

// NewRegistry is the metrics registry serve exports when its metrics
// listener is on (the default): the Go runtime's and the process's
// collectors, to which server.WithMetrics adds the server's.
func NewRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}
