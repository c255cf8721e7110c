package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// WithWebTLS makes ServeWeb serve HTTPS with cfg (HTTP/2 and HTTP/1.1 by
// ALPN, offered before cfg's own NextProtos; TLS 1.2 at least) instead of
// plaintext HTTP/1.1 and h2c. The default is plaintext. ServeWeb
// terminates TLS itself, so its requests have no Request.TLS. WebHandler
// ignores it: the server it is mounted on decides.
func WithWebTLS(cfg *tls.Config) WebOption { return func(c *webConfig) { c.tls = cfg } }

// webReadHeaderTimeout bounds how long a client may take to send a
// request's headers.
const webReadHeaderTimeout = 10 * time.Second

// ServeWeb serves WebHandler(opts...) on lis until Shutdown or Close, which
// stop it with the gRPC server: Watch calls end with UNAVAILABLE, other
// calls may finish within Shutdown's deadline. It speaks HTTP/1.1 and
// HTTP/2 (h2c in plaintext; by ALPN with WithWebTLS). Its connections count
// against the server's connection limit, its auth timeout and its refused
// calls per connection, as the gRPC port's do; its calls' headers are
// bounded as theirs (WithMaxHeaderBytes), and an idle connection is closed
// after WithMaxConnectionIdle. Its HTTP/2 connections are held to
// WithStreamResetRate and WithRequestFrameRate, as the gRPC port's are
// (webguard.go). With WithWebTLS the server terminates TLS itself, so the
// handler's requests have no Request.TLS. Like Serve, it returns nil after Shutdown or
// Close, and at once if they have begun.
func (s *Server) ServeWeb(lis net.Listener, opts ...WebOption) error {
	var cfg webConfig
	for _, o := range opts {
		o(&cfg)
	}
	h, err := s.WebHandler(opts...)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: webReadHeaderTimeout,
		IdleTimeout:       s.cfg.maxConnIdle,
		MaxHeaderBytes:    s.cfg.maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.cfg.log.Handler(), slog.LevelDebug),
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: int(s.cfg.maxStreamsPerConn)},
		Protocols:         new(http.Protocols),
		ConnContext:       webConnContext,
	}
	// Over TLS too, net/http is handed plaintext (webListener terminates
	// TLS beneath the scanner), HTTP/2 by prior knowledge after ALPN's h2.
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetUnencryptedHTTP2(true)
	var tlsCfg *tls.Config
	if cfg.tls != nil {
		tlsCfg = webTLS(cfg.tls)
	}
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return nil
	}
	s.webServers = append(s.webServers, hs)
	s.mu.Unlock()
	err = hs.Serve(s.resets.webListener(s.guard.listener(lis), tlsCfg))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// webALPN are the protocols ServeWeb offers over TLS.
var webALPN = []string{"h2", "http/1.1"}

// webTLS is cfg for ServeWeb, offering webALPN: on cfg itself, and on the
// configurations a GetConfigForClient returns (as for mutual TLS), whose
// handshakes would otherwise fall back to HTTP/1.1, without gRPC. It holds
// them to TLS 1.2 at least, as net/http's HTTP/2 server does (it no longer
// sees the TLS connection: webListener terminates TLS beneath the scanner).
func webTLS(cfg *tls.Config) *tls.Config {
	cfg = withWebALPN(cfg)
	if get := cfg.GetConfigForClient; get != nil {
		cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := get(hello)
			if c == nil || err != nil {
				return c, err
			}
			return withWebALPN(c), nil
		}
	}
	return cfg
}

// withWebALPN is a copy of cfg offering webALPN first, then its own
// protocols, at TLS 1.2 or later.
func withWebALPN(cfg *tls.Config) *tls.Config {
	cfg = cfg.Clone()
	protos := slices.Clone(webALPN)
	for _, p := range cfg.NextProtos {
		if !slices.Contains(protos, p) {
			protos = append(protos, p)
		}
	}
	cfg.NextProtos = protos
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	return cfg
}

// shutdownWeb stops ServeWeb's servers once the drain has begun: each
// refuses new connections and closes its idle ones, and its calls in
// flight may finish until ctx is done, when their connections are closed.
// Then it waits for the web calls in flight, on these servers and on
// handlers mounted elsewhere, ending the sessions still live once ctx is
// done so that none waits on a client.
func (s *Server) shutdownWeb(ctx context.Context) error {
	s.mu.Lock()
	servers := s.webServers
	s.mu.Unlock()
	errs := make(chan error, len(servers))
	for _, hs := range servers {
		go func() {
			err := hs.Shutdown(ctx)
			if err != nil {
				hs.Close()
			}
			errs <- err
		}()
	}
	var err error
	for range servers {
		err = errors.Join(err, <-errs)
	}
	calls := make(chan struct{})
	go func() {
		s.webCalls.Wait()
		close(calls)
	}()
	select {
	case <-calls:
	case <-ctx.Done():
		s.endSessions()
		<-calls
	}
	return err
}

// closeWeb is shutdownWeb at once, for Close.
func (s *Server) closeWeb() {
	s.mu.Lock()
	servers := s.webServers
	s.mu.Unlock()
	for _, hs := range servers {
		hs.Close()
	}
	s.endSessions()
	s.webCalls.Wait()
}

// endSessions ends every live session with UNAVAILABLE, for a stop that
// cannot wait for them to end in their turns.
func (s *Server) endSessions() {
	err := status.Error(codes.Unavailable, "server is shutting down; reconnect and resume")
	s.live.Range(func(k, _ any) bool {
		k.(*session).endWith(err)
		return true
	})
}
