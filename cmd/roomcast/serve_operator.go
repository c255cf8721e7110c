package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/roomcast/roomcast/internal/serveconfig"
	"github.com/roomcast/roomcast/internal/statuspage"
	"github.com/roomcast/roomcast/server"
)

// operatorFlags are serve's flags for what the operator sees of the
// server and of its process: the access log, the status page and the
// garbage collector's headroom.
type operatorFlags struct {
	accessLog  accessLogLevel
	statusTail bool
	gcHeadroom int64
}

func (f *operatorFlags) define(fs *flag.FlagSet) {
	f.accessLog = accessLogLevel{level: server.DefaultAccessLogLevel}
	fs.Var(&f.accessLog, "access-log-level",
		"log one line per finished call and ended stream (method, peer, subject, code, duration; a stream's rooms and messages) at `LEVEL`: debug, info, warn or error, or off for none; a successful unary Publish is logged at debug; lines below --log-level are dropped")
	fs.BoolVar(&f.statusTail, "status-page-tail", false,
		"let the status page (/status on --metrics-listen) show a live tail of any room's messages; that listener has no authentication, so whoever reaches it reads every room")
	fs.Int64Var(&f.gcHeadroom, "gc-headroom", 0,
		"while the server is busy, let the heap grow by at least `N` bytes between garbage collections: less CPU per publish, more memory (see docs/operations.md); 0 keeps Go's default; GOGC or GOMEMLIMIT in the environment win over it")
}

// validate checks the flags that no option of the server's does.
func (f *operatorFlags) validate() error {
	if f.gcHeadroom < 0 {
		return fmt.Errorf("--gc-headroom must not be negative, got %d", f.gcHeadroom)
	}
	return nil
}

// startGC starts tuning the garbage collector to --gc-headroom, logging
// when the environment overrides it; nil when the flag is 0.
func (f *operatorFlags) startGC(log *slog.Logger) (*serveconfig.GCTuner, error) {
	if f.gcHeadroom == 0 {
		return nil, nil
	}
	gc, err := serveconfig.StartGCTuner(f.gcHeadroom)
	if err != nil {
		return nil, err
	}
	if !gc.Active() {
		log.Warn("--gc-headroom is ignored: GOGC or GOMEMLIMIT in the environment sets the garbage collector")
	}
	return gc, nil
}

// serverOptions are the server's options from the flags.
func (f *operatorFlags) serverOptions() []server.Option {
	if f.accessLog.off {
		return []server.Option{server.WithoutAccessLog()}
	}
	return []server.Option{server.WithAccessLog(f.accessLog.level)}
}

// statusPage serves srv's status page at /status on mux, the metrics
// listener's, and returns it for the listener's shutdown to Close.
func (f *operatorFlags) statusPage(mux *http.ServeMux, srv *server.Server, log *slog.Logger) *statuspage.Page {
	page := statuspage.New(srv, statuspage.WithTail(f.statusTail))
	mux.Handle("/status", page)
	mux.Handle("/status/", page)
	if f.statusTail {
		log.Warn("the status page shows rooms' messages (--status-page-tail) to whoever reaches the metrics listener, without credentials")
	}
	return page
}

// accessLogLevel is --access-log-level: a slog level, or off.
type accessLogLevel struct {
	level slog.Level
	off   bool
}

func (l *accessLogLevel) String() string {
	if l.off {
		return "off"
	}
	return strings.ToLower(l.level.String())
}

func (l *accessLogLevel) Set(s string) error {
	if strings.EqualFold(s, "off") {
		l.off = true
		return nil
	}
	if err := l.level.UnmarshalText([]byte(s)); err != nil {
		return fmt.Errorf("want debug, info, warn, error or off, got %q", s)
	}
	l.off = false
	return nil
}
