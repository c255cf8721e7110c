package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/gen/roomcast/v1/roomcastv1connect"
)

var webAddr = regexp.MustCompile(`msg="serving web clients" addr=(\S+)`)

// preflight sends a CORS preflight for Watch from origin to base and
// returns the origin it allows, "" for none.
func preflight(t *testing.T, ctx context.Context, base, origin string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodOptions, base+roomcastv1connect.BrokerServiceWatchProcedure, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("Access-Control-Allow-Origin")
}

// serve's --http-listen serves Watch and Publish to web clients, allowing
// by default only the status page's origin; --http-allowed-origins
// replaces that; and SIGTERM's drain ends the web listener's calls too.
func TestServeWebListener(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		allowed []string // origins a preflight must be allowed from; "status" is the status page's
		refused []string
	}{
		{"default", nil, []string{"status"}, []string{"https://app.example.com"}},
		{"origins given", []string{"--http-allowed-origins", "https://app.example.com, https://other.example.com"}, []string{"https://app.example.com", "https://other.example.com"}, []string{"status", "https://evil.example.com"}},
		{"none", []string{"--http-allowed-origins", ""}, nil, []string{"status", "https://app.example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			serveCtx, stop := context.WithCancel(ctx)
			stderr := newSyncBuffer()
			exited := make(chan int, 1)
			args := append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, tc.args...)
			go func() { exited <- run(serveCtx, args, io.Discard, stderr) }()
			maddr := stderr.waitFor(t, ctx, metricsAddr)[1]
			base := "http://" + stderr.waitFor(t, ctx, webAddr)[1]
			origin := func(o string) string {
				if o == "status" {
					return "http://" + maddr
				}
				return o
			}
			for _, o := range tc.allowed {
				if got := preflight(t, ctx, base, origin(o)); got != origin(o) {
					t.Errorf("preflight from %s: allowed %q", origin(o), got)
				}
			}
			for _, o := range tc.refused {
				if got := preflight(t, ctx, base, origin(o)); got != "" {
					t.Errorf("preflight from %s: allowed %q", origin(o), got)
				}
			}

			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			c := roomcastv1connect.NewBrokerServiceClient(&http.Client{Transport: tr}, base)
			watch, err := c.Watch(ctx, connect.NewRequest(&roomcastv1.WatchRequest{Rooms: []*roomcastv1.JoinCommand{{Room: "web"}}}))
			if err != nil {
				t.Fatal(err)
			}
			defer watch.Close()
			for range 2 { // the session event and the join's reply
				if !watch.Receive() {
					t.Fatalf("watch: %v", watch.Err())
				}
			}
			if _, err := c.Publish(ctx, connect.NewRequest(&roomcastv1.PublishRequest{Room: "web", Payload: &roomcastv1.PublishRequest_Text{Text: "hi"}})); err != nil {
				t.Fatal(err)
			}
			if !watch.Receive() || watch.Msg().GetBatch().GetMessages()[0].GetText() != "hi" {
				t.Fatalf("watch: %v, %v", watch.Msg(), watch.Err())
			}
			stop()
			for watch.Receive() {
			}
			if connect.CodeOf(watch.Err()) != connect.CodeUnavailable {
				t.Errorf("watch ended with %v, want UNAVAILABLE", watch.Err())
			}
			if code := <-exited; code != 0 {
				t.Errorf("serve exited with %d; stderr:\n%s", code, stderr)
			}
		})
	}
}

// --http-listen on an address beyond loopback needs TLS or
// --insecure-plaintext, as --listen does; "" turns it off.
func TestServeWebListenerFlags(t *testing.T) {
	ctx := testCtx(t)
	code, _, stderr := runCmd(ctx, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "", "--http-listen", "0.0.0.0:0")
	if code != exitUsage || !strings.Contains(stderr, "--http-listen") {
		t.Errorf("plaintext beyond loopback: exit %d, stderr %s", code, stderr)
	}
	s := startServe(t, "--http-listen", "")
	if strings.Contains(s.stderr.String(), "serving web clients") {
		t.Errorf("--http-listen \"\" still serves web clients:\n%s", s.stderr)
	}
}
