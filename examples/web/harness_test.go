package web_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/server"
)

// waitLimit bounds every wait of a test.
const waitLimit = 30 * time.Second

// httpServer is an http.Server of a test on a loopback listener.
type httpServer struct {
	addr   string
	srv    *http.Server
	served chan error
}

// serveHTTP serves h on a loopback port until the end of the test.
func serveHTTP(t *testing.T, h http.Handler) *httpServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &httpServer{addr: lis.Addr().String(), srv: &http.Server{Handler: h, ReadHeaderTimeout: waitLimit}, served: make(chan error, 1)}
	go func() { s.served <- s.srv.Serve(lis) }()
	t.Cleanup(func() {
		s.srv.Close()
		if err := <-s.served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("http Serve: %v", err)
		}
	})
	return s
}

// node is a roomcast server of a test: gRPC on one loopback port, for the
// test's Go clients, and once serveWeb is called, its web port (ServeWeb,
// as `roomcast serve --http-listen` runs it) on another, for the page.
type node struct {
	t       *testing.T
	srv     *server.Server
	grpc    string // the gRPC address
	web     string // the web port's address, once serveWeb is called
	client  roomcastv1.BrokerServiceClient
	stopped sync.Once
	served  chan error // Serve's, then ServeWeb's
}

// startNode runs a server until stop or the end of the test.
func startNode(t *testing.T, opts ...server.Option) *node {
	t.Helper()
	opts = append([]server.Option{server.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	srv, err := server.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	n := &node{t: t, srv: srv, grpc: lis.Addr().String(), served: make(chan error, 2)}
	go func() { n.served <- srv.Serve(lis) }()
	t.Cleanup(n.stop)
	n.client = roomcastv1.NewBrokerServiceClient(servertest.Dial(t, n.grpc))
	return n
}

// serveWeb serves the node's web port on addr (a port of 0 picks one),
// letting the page's origin call it, and returns its base URL.
func (n *node) serveWeb(addr, pageOrigin string) string {
	n.t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		n.t.Fatal(err)
	}
	n.web = lis.Addr().String()
	go func() {
		err := n.srv.ServeWeb(lis, server.WithAllowedOrigins(pageOrigin))
		lis.Close() // ServeWeb leaves it open when Close came first
		n.served <- err
	}()
	return "http://" + n.web
}

// stop closes the server, which ends its calls and closes its ports: the
// web port's address is free for a restart. It is idempotent.
func (n *node) stop() {
	n.stopped.Do(func() {
		n.srv.Close()
		waits := 1
		if n.web != "" {
			waits++
		}
		for range waits {
			if err := <-n.served; err != nil {
				n.t.Errorf("Serve or ServeWeb: %v", err)
			}
		}
	})
}

// publish publishes text to room through the node's gRPC port and returns
// its offset and the room's epoch.
func (n *node) publish(t *testing.T, ctx context.Context, room, text string) (uint64, string) {
	t.Helper()
	resp, err := n.client.Publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: text}})
	if err != nil {
		t.Fatalf("publish %q to %s: %v", text, room, err)
	}
	return resp.GetOffset(), resp.GetEpoch()
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLimit)
	t.Cleanup(cancel)
	return ctx
}
