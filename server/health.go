package server

import (
	"context"
	"errors"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// healthInterval is how often the server asks its broker whether it can
// serve; with an engine that is a round trip to the engine's store.
const healthInterval = time.Second

// watchBroker keeps BrokerService's health status in step with the broker:
// NOT_SERVING while its engine's store does not answer, so that load
// balancers send callers to nodes that can serve them, and SERVING again
// once it does, until the server stops. The overall status ("") stays
// SERVING: the server itself is up.
func (s *Server) watchBroker() {
	defer s.goroutines.Done()
	t := time.NewTicker(healthInterval)
	defer t.Stop()
	serving := true
	for {
		select {
		case <-s.stopped:
			return
		case <-t.C:
		}
		err := errors.New("the broker's health check panicked")
		s.guarded("health watch", func() {
			ctx, cancel := context.WithTimeout(context.Background(), healthInterval)
			defer cancel()
			err = s.broker.Ping(ctx)
		})
		if now := err == nil; now != serving && !s.isDraining() {
			serving = now
			status := healthpb.HealthCheckResponse_SERVING
			if !serving {
				status = healthpb.HealthCheckResponse_NOT_SERVING
				s.cfg.log.Warn("the broker cannot serve: health is NOT_SERVING until it can", "err", err)
			} else {
				s.cfg.log.Info("the broker can serve again: health is SERVING")
			}
			s.health.SetServingStatus(roomcastv1.BrokerService_ServiceDesc.ServiceName, status)
		}
	}
}
