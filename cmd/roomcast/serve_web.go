package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/roomcast/roomcast/server"
)

// defaultHTTPListen is where serve answers web clients unless told
// otherwise: loopback, beside the gRPC port (50051) and metrics (9464).
const defaultHTTPListen = "127.0.0.1:8080"

// webFlags are serve's flags for web clients: the listener of
// server.ServeWeb and its CORS origins.
type webFlags struct {
	listen  string
	origins originList
}

func (f *webFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.listen, "http-listen", defaultHTTPListen,
		"serve Publish, Watch, History and Presence to browsers and other HTTP clients on `ADDR` (Connect, gRPC-Web and gRPC; HTTP/1.1 and HTTP/2), with the gRPC port's TLS, credentials and limits; \"\" disables it, and so does $ROOMCAST_HTTP_LISTEN set empty")
	fs.Var(&f.origins, "http-allowed-origins",
		"let pages from the comma-separated `ORIGINS` (such as https://app.example.com, or * for any) call --http-listen from a browser; \"\" for none. By default only the status page's own origin, when it is served")
}

// validate checks the web listener's address as --listen's is checked:
// plaintext only on loopback unless --insecure-plaintext.
func (f *webFlags) validate(t *transportFlags) error {
	if f.listen == "" || t.tls() {
		return nil
	}
	if err := checkPlaintext(f.listen, t.insecurePlaintext); err != nil {
		return fmt.Errorf("--http-listen: %w", err)
	}
	return nil
}

// webOptions are ServeWeb's options. Unless --http-allowed-origins was
// given, the status page's origin is allowed when it is served, at
// statusAddr (nil when it is not): a page of the operator's own, on the
// metrics listener, in plain HTTP.
func (f *webFlags) webOptions(t *transportFlags, statusAddr net.Addr, log *slog.Logger) []server.WebOption {
	var opts []server.WebOption
	origins := f.origins.list
	if !f.origins.set && statusAddr != nil {
		origins = statusOrigins(statusAddr)
	}
	if len(origins) > 0 {
		opts = append(opts, server.WithAllowedOrigins(origins...))
		log.Info("allowing browser pages of other origins to call the web listener", "origins", strings.Join(origins, ","))
	}
	if t.files != nil {
		opts = append(opts, server.WithWebTLS(t.files.config()))
	}
	return opts
}

// statusOrigins are the origins a browser gives the status page at addr:
// the address itself, and localhost for a loopback one. An unspecified
// address (0.0.0.0) gives none, as its pages' host is unknown.
func statusOrigins(addr net.Addr) []string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP.IsUnspecified() {
		return nil
	}
	origins := []string{"http://" + tcp.String()}
	if tcp.IP.IsLoopback() {
		origins = append(origins, fmt.Sprintf("http://localhost:%d", tcp.Port))
	}
	return origins
}

// originList is --http-allowed-origins: comma-separated origins, and
// whether it was set at all (set empty, it allows none).
type originList struct {
	list []string
	set  bool
}

func (o *originList) String() string { return strings.Join(o.list, ",") }

func (o *originList) Set(s string) error {
	o.set = true
	o.list = nil
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			o.list = append(o.list, part)
		}
	}
	return nil
}
