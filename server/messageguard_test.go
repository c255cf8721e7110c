package server_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// A Subscribe stream that announces a command of the receive limit (1 MiB)
// and sends all but its last byte would have grpc-go hold the rest for as
// long as it liked, a thousand times over for one credential: its
// connection is closed with GOAWAY as the prefix arrives, and counted.
func TestACommandAnnouncedFarOverItsLimitClosesTheConnection(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, addr := start(t, server.WithMetrics(reg))
	ctx := within(t, 10*time.Second)
	c := dialRaw(t, addr)
	id, err := rawCall(c, roomcastv1.BrokerService_Subscribe_FullMethodName, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	prefix := []byte{0, 0, 0x10, 0, 0} // 1 MiB to come
	if err := c.DataBytes(id, append(prefix, make([]byte, 1000)...)); err == nil {
		c.Flush()
	}
	end, err := c.Wait(ctx)
	if err != nil || end.GoAway == nil || *end.GoAway != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("the connection: %+v, %v; want it closed with GOAWAY (ENHANCE_YOUR_CALM)", end, err)
	}
	if n := counter(t, reg, "roomcast_message_size_closes_total"); n != 1 {
		t.Errorf("roomcast_message_size_closes_total = %v, want 1", n)
	}
}
