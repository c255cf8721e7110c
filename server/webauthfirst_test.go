package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// A web call without a credential is refused from its headers, before its
// body is read (issue #13 (c)): connect-go reads a unary request whole
// before its interceptors run. Each call here sends its headers and the
// first bytes of a 1 MiB body, then holds the rest back; the refusal must
// come while it does, in the call's own protocol.
func TestWebRefusesAnUnauthenticatedCallBeforeItsBody(t *testing.T) {
	srv, _ := servertest.Start(t, server.WithAuthenticator(testjwt.Authenticator(t)))
	web := startWeb(t, srv)
	for _, tc := range []struct {
		name, contentType string
		http2             bool
		want              func(*http.Response, string) bool
	}{
		{"connect-proto-http1", "application/proto", false, func(r *http.Response, body string) bool {
			return r.StatusCode == http.StatusUnauthorized && strings.Contains(body, `"unauthenticated"`)
		}},
		{"grpcweb-proto-http1", "application/grpc-web+proto", false, func(r *http.Response, body string) bool {
			return r.Header.Get("Grpc-Status") == "16" || strings.Contains(body, "grpc-status: 16")
		}},
		{"grpc-proto-h2c", "application/grpc", true, func(r *http.Response, _ string) bool {
			return r.Header.Get("Grpc-Status") == "16" || r.Trailer.Get("Grpc-Status") == "16"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// A gRPC length prefix announcing 1 MiB, and the first bytes of
			// a PublishRequest; the rest never comes.
			body := &heldBody{first: []byte{0, 0, 0x10, 0, 0, 0x0a, 0x04, 'r', 'o', 'o', 'm'}, done: ctx.Done(), closed: make(chan struct{})}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, web+"/roomcast.v1.BrokerService/Publish", body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = 1 << 20
			req.Header.Set("Content-Type", tc.contentType)
			resp, err := httpClient(t, tc.http2).Do(req)
			if err != nil {
				t.Fatalf("no answer while the body was held back: %v", err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			if !tc.want(resp, string(got)) {
				t.Errorf("answer %s, headers %v, trailers %v, body %q: want UNAUTHENTICATED", resp.Status, resp.Header, resp.Trailer, got)
			}
		})
	}
}

// heldBody is a request body that reads first, then nothing more until
// done is closed or the client closes it, when its read fails.
type heldBody struct {
	first  []byte
	done   <-chan struct{}
	closed chan struct{}
	once   sync.Once
}

func (b *heldBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

func (b *heldBody) Read(p []byte) (int, error) {
	if len(b.first) > 0 {
		n := copy(p, b.first)
		b.first = b.first[n:]
		return n, nil
	}
	select {
	case <-b.done:
	case <-b.closed:
	}
	return 0, context.Canceled
}
