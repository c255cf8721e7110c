package server_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/gen/roomcast/v1/roomcastv1connect"
	"github.com/roomcast/roomcast/server"
)

// startWeb serves srv's web handler on a loopback port with ServeWeb, and
// returns its base URL. The server is closed, and ServeWeb awaited, when the
// test ends.
func startWeb(t testing.TB, srv *server.Server, opts ...server.WebOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeWeb(lis, opts...) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeWeb: %v", err)
		}
	})
	return "http://" + lis.Addr().String()
}

// webProtocol is one way a web client calls: a protocol and an encoding of
// connect-go's, over HTTP/1.1 or HTTP/2 (h2c).
type webProtocol struct {
	name  string
	http2 bool
	opts  []connect.ClientOption
}

// webProtocols are every protocol and encoding the web handler serves, each
// over the HTTP versions it runs on (gRPC needs HTTP/2).
var webProtocols = []webProtocol{
	{name: "connect-proto-http1"},
	{name: "connect-proto-h2c", http2: true},
	{name: "connect-json-http1", opts: []connect.ClientOption{connect.WithProtoJSON()}},
	{name: "connect-json-h2c", http2: true, opts: []connect.ClientOption{connect.WithProtoJSON()}},
	{name: "grpcweb-proto-http1", opts: []connect.ClientOption{connect.WithGRPCWeb()}},
	{name: "grpcweb-json-h2c", http2: true, opts: []connect.ClientOption{connect.WithGRPCWeb(), connect.WithProtoJSON()}},
	{name: "grpc-proto-h2c", http2: true, opts: []connect.ClientOption{connect.WithGRPC()}},
}

// httpClient returns an HTTP client of its own, HTTP/1.1 or h2c, whose
// connections are closed when the test ends.
func httpClient(t testing.TB, http2 bool) *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	if http2 {
		tr.Protocols.SetUnencryptedHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// client returns a connect-go BrokerService client speaking p to base.
func (p webProtocol) client(t testing.TB, base string) roomcastv1connect.BrokerServiceClient {
	return roomcastv1connect.NewBrokerServiceClient(httpClient(t, p.http2), base, p.opts...)
}

// webWatch is a test's side of a web Watch call.
type webWatch struct {
	t       testing.TB
	recvFn  func() (*roomcastv1.WatchResponse, error)
	pending []*roomcastv1.Message
}

// watchWeb opens a Watch call of rooms, each a JoinCommand.
func watchWeb(t testing.TB, ctx context.Context, c roomcastv1connect.BrokerServiceClient, token string, rooms ...*roomcastv1.JoinCommand) *webWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	req := connect.NewRequest(&roomcastv1.WatchRequest{Rooms: rooms})
	if token != "" {
		req.Header().Set("Authorization", "Bearer "+token)
	}
	stream, err := c.Watch(ctx, req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		stream.Close()
	})
	return &webWatch{t: t, recvFn: func() (*roomcastv1.WatchResponse, error) {
		if stream.Receive() {
			return stream.Msg(), nil
		}
		if err := stream.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("the Watch ended without an error")
	}}
}

// watchGRPC opens a Watch call of rooms with a grpc-go client.
func watchGRPC(t testing.TB, ctx context.Context, c roomcastv1.BrokerServiceClient, rooms ...*roomcastv1.JoinCommand) *webWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	stream, err := c.Watch(ctx, &roomcastv1.WatchRequest{Rooms: rooms})
	if err != nil {
		t.Fatal(err)
	}
	return &webWatch{t: t, recvFn: stream.Recv}
}

// rooms returns JoinCommands of names, without positions.
func rooms(names ...string) []*roomcastv1.JoinCommand {
	out := make([]*roomcastv1.JoinCommand, len(names))
	for i, n := range names {
		out[i] = &roomcastv1.JoinCommand{Room: n}
	}
	return out
}

// recv returns the next response, or the error the call ended with.
func (w *webWatch) recv() (*roomcastv1.WatchResponse, error) { return w.recvFn() }

// greeting reads the session event and one reply per room, checking that
// they come in the request's order, and returns the replies.
func (w *webWatch) greeting(names ...string) []*roomcastv1.CommandReply {
	w.t.Helper()
	resp, err := w.recv()
	if err != nil {
		w.t.Fatalf("waiting for the session event: %v", err)
	}
	if resp.GetSession().GetSessionId() == "" {
		w.t.Fatalf("first response is %v, want a session event", resp)
	}
	replies := make([]*roomcastv1.CommandReply, 0, len(names))
	for len(replies) < len(names) {
		resp, err := w.recv()
		if err != nil {
			w.t.Fatalf("waiting for the reply for %s: %v", names[len(replies)], err)
		}
		if resp.GetBatch() != nil {
			w.pending = append(w.pending, resp.GetBatch().GetMessages()...)
			continue
		}
		rep := resp.GetReply()
		if rep.GetId() != names[len(replies)] {
			w.t.Fatalf("reply %v, want the one for %s", resp, names[len(replies)])
		}
		replies = append(replies, rep)
	}
	return replies
}

// next returns the next message.
func (w *webWatch) next() *roomcastv1.Message {
	w.t.Helper()
	m, err := w.nextErr()
	if err != nil {
		w.t.Fatalf("receiving a message: %v", err)
	}
	return m
}

func (w *webWatch) nextErr() (*roomcastv1.Message, error) {
	for len(w.pending) == 0 {
		resp, err := w.recv()
		if err != nil {
			return nil, err
		}
		if resp.GetBatch() == nil {
			return nil, errors.New("unexpected response " + resp.String())
		}
		w.pending = resp.GetBatch().GetMessages()
	}
	m := w.pending[0]
	w.pending = w.pending[1:]
	return m, nil
}

// expectEnd reads until the call ends, checks its code, and returns its
// message.
func (w *webWatch) expectEnd(want codes.Code) string {
	w.t.Helper()
	for {
		_, err := w.recv()
		if err == nil {
			continue
		}
		if code, msg := errorOf(err); code != want {
			w.t.Fatalf("call ended with %v, want %v", err, want)
		} else {
			return msg
		}
	}
}

// errorOf is the code and message of a connect-go or a grpc-go error.
func errorOf(err error) (codes.Code, string) {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return codes.Code(ce.Code()), ce.Message()
	}
	st := status.Convert(err)
	return st.Code(), st.Message()
}
