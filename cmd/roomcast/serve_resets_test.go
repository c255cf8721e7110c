package main

import (
	"crypto/tls"
	"strings"
	"testing"

	"golang.org/x/net/http2"

	"github.com/roomcast/roomcast/internal/rawh2"
	"github.com/roomcast/roomcast/internal/testsupport/testcert"
)

// serve's TLS credentials are watched for rapid reset too: a client that
// floods HEADERS and RST_STREAM pairs over TLS is sent GOAWAY and
// disconnected, which the log says with its address.
func TestServeClosesARapidResetFloodOverTLS(t *testing.T) {
	ca := testcert.NewCA(t, "roomcast test CA")
	cert, key := ca.ServerFiles(t)
	s := startServe(t, "--tls-cert", cert, "--tls-key", key, "--stream-reset-rate", "100", "--stream-reset-burst", "100")
	ctx := testCtx(t)

	conn, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	h2, err := rawh2.New(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	h2.RapidReset(s.addr, "/roomcast.v1.BrokerService/Publish", 10_000)
	end, err := h2.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if end.PingAcked || end.GoAway == nil || *end.GoAway != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("after 10,000 resets the server sent %v, then %v; want GOAWAY (ENHANCE_YOUR_CALM) and the connection closed", end.Frames, end.Err)
	}
	for !strings.Contains(s.stderr.String(), "peer="+h2.LocalAddr().String()) {
		select {
		case <-s.stderr.changed:
		case <-ctx.Done():
			t.Fatalf("serve did not log the closure:\n%s", s.stderr)
		}
	}
}
