package server

import (
	"runtime"
	"runtime/debug"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// ServerInfo describes the server as AdminService.GetServerInfo does: its
// version, uptime, engine, limits and counters. It is safe for concurrent
// use.
func (s *Server) ServerInfo() *roomcastv1.GetServerInfoResponse {
	now := time.Now()
	st := s.broker.Stats()
	bl := s.broker.Limits()
	version, revision := buildVersion()
	return &roomcastv1.GetServerInfoResponse{
		Version:   version,
		Revision:  revision,
		GoVersion: runtime.Version(),
		StartTime: timestamppb.New(s.started),
		Uptime:    durationpb.New(now.Sub(s.started)),
		Engine:    s.broker.EngineName(),
		Limits: &roomcastv1.ServerLimits{
			MaxMessageBytes:         uint64(s.cfg.maxMessageBytes),
			MaxRoomsPerSession:      uint32(s.cfg.maxRooms),
			MaxStreams:              uint32(s.cfg.maxTotalStreams),
			MaxStreamsPerConnection: s.cfg.maxStreamsPerConn,
			WriteTimeout:            durationpb.New(s.cfg.writeTimeout),
			BacklogMessages:         uint32(bl.BacklogMessages),
			BacklogBytes:            uint64(bl.BacklogBytes),
			HistoryMessages:         uint32(bl.HistoryMessages),
			HistoryTtl:              durationpb.New(bl.HistoryTTL),
			MaxRooms:                uint32(bl.MaxRooms),
			MaxRetainedBytes:        uint64(bl.MaxRetainedBytes),
			PublishRate:             s.cfg.publishRate,
			CommandRate:             s.cfg.commandRate,
			PresenceMembers:         uint32(bl.PresenceMembers),
		},
		Counters: &roomcastv1.ServerCounters{
			Published:        st.Published,
			Encoded:          st.Encoded,
			Received:         st.Received,
			Delivered:        st.Delivered,
			SlowConsumers:    st.Lagged,
			Rooms:            uint64(st.Rooms),
			RetainedBytes:    uint64(max(st.Retained, 0)),
			RoomsReclaimed:   st.Reclaimed,
			Deduplicated:     st.Deduplicated,
			Sessions:         uint64(max(s.streams.Load(), 0)),
			Panics:           s.panics.Load(),
			ResetFloodCloses: s.resets.closed.Load(),
		},
	}
}

// buildVersion is the main module's version and VCS revision, from the
// binary's build info: "(devel)" for a build from a work tree, "unknown"
// when the binary has no build info.
func buildVersion() (version, revision string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown", ""
	}
	version = bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if revision != "" && modified {
		revision += "-dirty"
	}
	return version, revision
}
