package server_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/rawh2"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testcert"
	"github.com/roomcast/roomcast/server"
)

// rawTransport is one way to reach a server: the server's options, a gRPC
// client's dial options, and how a raw HTTP/2 client connects.
type rawTransport struct {
	name    string
	opts    []server.Option
	dial    []grpc.DialOption
	connect func(addr string) (net.Conn, error)
	wrap    func(net.Conn) net.Conn // the client's side of the transport credentials; nil in plaintext
}

// from is tr connecting from the local IP ip, another address of loopback.
func (tr rawTransport) from(ip string) rawTransport {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr.connect = func(addr string) (net.Conn, error) {
		c, err := d.Dial("tcp", addr)
		if err != nil || tr.wrap == nil {
			return c, err
		}
		return tr.wrap(c), nil
	}
	return tr
}

// rawTransports are plaintext, and TLS with a CA of the test's own.
func rawTransports(t testing.TB) []rawTransport {
	ca := testcert.NewCA(t, "roomcast test CA")
	cert := ca.ServerCert(t)
	return []rawTransport{
		{
			name:    "plaintext",
			connect: func(addr string) (net.Conn, error) { return net.Dial("tcp", addr) },
		},
		{
			name: "tls",
			opts: []server.Option{server.WithTransportCredentials(credentials.NewServerTLSFromCert(&cert))},
			dial: []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool()}))},
			connect: func(addr string) (net.Conn, error) {
				return tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2"}})
			},
			wrap: func(c net.Conn) net.Conn {
				return tls.Client(c, &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2"}, ServerName: "127.0.0.1"})
			},
		},
	}
}

// connectRaw opens a raw HTTP/2 connection to addr over tr, closed when
// the test ends.
func (tr rawTransport) connectRaw(t testing.TB, addr string) *rawh2.Conn {
	t.Helper()
	conn, err := tr.connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rawh2.New(conn)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		<-c.Done()
	})
	return c
}

// calmBystander subscribes a client on a connection of its own to room
// "calm" and publishes "before" to it; the function it returns publishes
// "after" and checks that both arrived, so that a test sees the server went
// on serving others through what it did.
func calmBystander(t testing.TB, ctx context.Context, addr string, dial ...grpc.DialOption) func() {
	t.Helper()
	c := roomcastv1.NewBrokerServiceClient(servertest.Dial(t, addr, dial...))
	sub := subscribe(t, ctx, c, "calm")
	publishText(t, ctx, c, "calm", "before")
	return func() {
		t.Helper()
		publishText(t, ctx, c, "calm", "after")
		for _, want := range []string{"before", "after"} {
			if m := sub.next(); m.GetText() != want {
				t.Fatalf("bystander got %v, want %q", m, want)
			}
		}
	}
}

// expectCalmed waits until the server has closed c, after what (a flood
// the test sent, then a PING), and checks that it sent GOAWAY
// ENHANCE_YOUR_CALM and did not answer the PING.
func expectCalmed(t testing.TB, ctx context.Context, c *rawh2.Conn, what string) {
	t.Helper()
	end, err := c.Wait(ctx)
	if err != nil {
		t.Fatal("the server neither answered the PING nor closed the connection")
	}
	if end.PingAcked {
		t.Fatalf("the connection is still open after %s; the server sent %v", what, end.Frames)
	}
	if end.GoAway == nil || *end.GoAway != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("GOAWAY code %v, want %v; the server sent %v, reads ended with %v", end.GoAway, http2.ErrCodeEnhanceYourCalm, end.Frames, end.Err)
	}
}

// dialRaw opens an HTTP/2 connection to addr driven by hand
// (internal/rawh2), for calls no gRPC client would make. It is closed when
// the test ends.
func dialRaw(t testing.TB, addr string) *rawh2.Conn {
	t.Helper()
	plain := rawTransport{connect: func(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }}
	return plain.connectRaw(t, addr)
}

// rawCall opens a stream on c for a gRPC call to method with the extra
// header fields, ending it with the headers if endStream, and sends it. The
// error is the server's closing the connection under it.
func rawCall(c *rawh2.Conn, method string, extra []hpack.HeaderField, endStream bool) (uint32, error) {
	id, err := c.Open(c.Encode(rawh2.GRPCHeaders("roomcast.test", method, extra...)), endStream)
	if err == nil {
		err = c.Flush()
	}
	return id, err
}

// rawRequest sends msg as the request of stream id, and ends the stream.
func rawRequest(c *rawh2.Conn, id uint32, msg []byte) error {
	if err := c.Data(id, msg, true); err != nil {
		return err
	}
	return c.Flush()
}

// closedBy reports whether the server closed c before ctx ended, and
// whether it sent a GOAWAY first.
func closedBy(ctx context.Context, c *rawh2.Conn) (closed, goaway bool) {
	end, err := c.Wait(ctx)
	return err == nil, end.GoAway != nil
}
