package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"maps"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/testsupport/testcert"
	"github.com/roomcast/roomcast/server"
)

func TestPublishDeliversEveryField(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "chat.room-42")

	data := []byte{0, 1, 2, 255}
	off, err := c.Publish(ctx, "chat.room-42", data,
		client.WithContentType("application/octet-stream"),
		client.WithHeaders(map[string]string{"trace-id": "abc", "x.y": "old"}),
		client.WithHeaders(map[string]string{"x.y": "z"}), // adds up, later wins
		client.WithSession(sub.SessionID()),
	)
	if err != nil {
		t.Fatal(err)
	}
	if off != 1 {
		t.Errorf("first offset %d, want 1", off)
	}
	if off := publishText(t, ctx, c, "chat.room-42", `{"hello":"world"}`, client.WithContentType("application/json")); off != 2 {
		t.Errorf("second offset %d, want 2", off)
	}

	m := next(t, ctx, sub)
	if m.GetRoom() != "chat.room-42" || m.GetOffset() != 1 || string(m.GetData()) != string(data) || m.GetText() != "" ||
		m.GetContentType() != "application/octet-stream" || m.GetPublisherSession() != sub.SessionID() || !m.GetPublishTime().IsValid() {
		t.Errorf("got %v", m)
	}
	if want := map[string]string{"trace-id": "abc", "x.y": "z"}; !maps.Equal(m.GetHeaders(), want) {
		t.Errorf("headers %v, want %v", m.GetHeaders(), want)
	}
	m = next(t, ctx, sub)
	if m.GetOffset() != 2 || m.GetText() != `{"hello":"world"}` || m.GetData() != nil || m.GetContentType() != "application/json" || m.GetPublisherSession() != "" {
		t.Errorf("text message arrived as %v", m)
	}
}

func TestPublishExcludeSession(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	me := subscribe(t, ctx, c, "chat")
	other := subscribe(t, ctx, c, "chat")

	publishText(t, ctx, c, "chat", "not for me", client.WithExcludeSession(me.SessionID()))
	publishText(t, ctx, c, "chat", "for everyone")

	if m := next(t, ctx, me); m.GetOffset() != 2 || m.GetText() != "for everyone" {
		t.Errorf("excluded session got %v first", m)
	}
	for want := uint64(1); want <= 2; want++ {
		if m := next(t, ctx, other); m.GetOffset() != want {
			t.Errorf("other session got offset %d, want %d", m.GetOffset(), want)
		}
	}
}

func TestPublishErrorsKeepStatus(t *testing.T) {
	_, addr := start(t, server.WithMaxMessageBytes(16))
	ctx := testCtx(t)
	c := dial(t, addr)

	for _, tc := range []struct {
		name string
		call func() (uint64, error)
		want codes.Code
	}{
		{"bad room", func() (uint64, error) { return c.PublishText(ctx, "chat room", "x") }, codes.InvalidArgument},
		{"bad header", func() (uint64, error) {
			return c.PublishText(ctx, "chat", "x", client.WithHeaders(map[string]string{"a b": "c"}))
		}, codes.InvalidArgument},
		{"bad session", func() (uint64, error) { return c.PublishText(ctx, "chat", "x", client.WithExcludeSession("no/slash")) }, codes.InvalidArgument},
		{"too large", func() (uint64, error) { return c.Publish(ctx, "chat", make([]byte, 17)) }, codes.ResourceExhausted},
		{"invalid UTF-8 text", func() (uint64, error) { return c.PublishText(ctx, "chat", "\xff") }, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.call()
			if status.Code(err) != tc.want {
				t.Fatalf("got %v, want code %v", err, tc.want)
			}
			if st, ok := status.FromError(err); !ok || strings.HasPrefix(st.Message(), "roomcast:") {
				t.Errorf("status.FromError(%v) = %v, %v: want the server's own message", err, st, ok)
			}
			if !strings.HasPrefix(err.Error(), `roomcast: publish to "`) {
				t.Errorf("error text %q does not say what failed", err)
			}
		})
	}
}

func TestPublishCanceledContext(t *testing.T) {
	_, addr := start(t)
	c := dial(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.PublishText(ctx, "chat", "x")
	if !errors.Is(err, context.Canceled) || status.Code(err) != codes.Canceled {
		t.Fatalf("got %v, want context.Canceled with code Canceled", err)
	}
}

func TestPublishUnreachableServer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	ctx := testCtx(t)
	c := dial(t, addr)
	if _, err := c.PublishText(ctx, "chat", "x"); status.Code(err) != codes.Unavailable {
		t.Errorf("Publish: got %v, want code Unavailable", err)
	}
	if _, err := c.Subscribe(ctx, "chat"); status.Code(err) != codes.Unavailable {
		t.Errorf("Subscribe: got %v, want code Unavailable", err)
	}
}

func TestWithDialOptions(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	var calls atomic.Int32
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		calls.Add(1)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	c := dial(t, addr, client.WithDialOptions(grpc.WithUnaryInterceptor(count)))
	publishText(t, ctx, c, "chat", "x")
	if n := calls.Load(); n != 1 {
		t.Errorf("interceptor saw %d calls, want 1", n)
	}
}

func TestWithTransportCredentials(t *testing.T) {
	ca := testcert.NewCA(t, "roomcast test CA")
	cert, pool := ca.ServerCert(t), ca.Pool()
	_, addr := start(t, server.WithGRPCOptions(grpc.Creds(credentials.NewServerTLSFromCert(&cert))))
	ctx := testCtx(t)

	c := dial(t, addr, client.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	sub := subscribe(t, ctx, c, "secure")
	publishText(t, ctx, c, "secure", "over TLS")
	if m := next(t, ctx, sub); m.GetText() != "over TLS" {
		t.Errorf("got %v", m)
	}

	plain := dial(t, addr) // the default is plaintext, which a TLS server refuses
	if _, err := plain.PublishText(ctx, "secure", "x"); status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext publish to a TLS server: got %v, want code Unavailable", err)
	}
}
