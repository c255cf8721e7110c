package server

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/broker"
)

// An engine that cannot reach its store is UNAVAILABLE to clients, without
// the engine's own message (which names its servers).
func TestBrokerStatusOfAnUnavailableEngine(t *testing.T) {
	err := brokerStatus(fmt.Errorf("%w: redis 10.0.0.7:6379: connection refused", broker.ErrUnavailable))
	if status.Code(err) != codes.Unavailable || strings.Contains(err.Error(), "10.0.0.7") {
		t.Fatalf("brokerStatus: %v", err)
	}
}
