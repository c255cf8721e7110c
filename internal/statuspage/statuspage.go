// Package statuspage serves roomcast's status page: a small web page, meant
// for the metrics listener, that shows the server's info and counters and
// its rooms with their publish rates, refreshed every second, and, when
// the operator enabled it, a live tail of one room's messages. Its assets
// are embedded: it needs no build step and nothing from the network.
//
// The page and its JSON endpoints have no authentication, like the metrics
// beside them: they show room names and counts to whoever reaches the
// listener. The tail shows messages, which only a room's subscribe grant
// may read on the gRPC side, so it is off unless WithTail turns it on.
package statuspage

import (
	"crypto/rand"
	"embed"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

//go:embed assets
var assets embed.FS

// Defaults of the page's limits.
const (
	// DefaultMaxTails is how many tails may run at once unless WithMaxTails
	// says otherwise.
	DefaultMaxTails = 8
	maxRooms        = 200              // rooms a rooms request lists
	keepalive       = 15 * time.Second // a tail's comment line while its room is quiet
	tailBatchBytes  = 64 << 10
)

// Option configures New.
type Option func(*Page)

// WithTail turns the live tail of a room's messages on or off. The default
// is off: the tail endpoint answers 403 Forbidden and the page says how to
// turn it on (roomcast serve --status-page-tail).
func WithTail(on bool) Option { return func(p *Page) { p.tail = on } }

// WithMaxTails bounds the tails running at once; past it the tail endpoint
// answers 503 Service Unavailable. The default is DefaultMaxTails (8).
func WithMaxTails(n int) Option { return func(p *Page) { p.slots = make(chan struct{}, max(n, 1)) } }

// Page is the status page of one server: an http.Handler serving /status
// and below. Its methods are safe for concurrent use.
type Page struct {
	srv   *server.Server
	tail  bool
	slots chan struct{} // one per running tail
	mux   *http.ServeMux

	stopOnce sync.Once
	stop     chan struct{} // closed by Close: tails end
}

// New returns the status page of srv.
func New(srv *server.Server, opts ...Option) *Page {
	p := &Page{srv: srv, slots: make(chan struct{}, DefaultMaxTails), mux: http.NewServeMux(), stop: make(chan struct{})}
	for _, o := range opts {
		o(p)
	}
	static, _ := fs.Sub(assets, "assets") // the directory is embedded: no error
	p.mux.Handle("GET /status/static/", http.StripPrefix("/status/static/", http.FileServerFS(static)))
	p.mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
		http.ServeFileFS(w, r, static, "index.html")
	})
	p.mux.HandleFunc("GET /status/api/info", p.info)
	p.mux.HandleFunc("GET /status/api/rooms", p.rooms)
	p.mux.HandleFunc("GET /status/api/tail", p.tailRoom)
	return p
}

// ServeHTTP serves the page at /status, its assets at /status/static/, and
// its JSON and event endpoints at /status/api/.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

// Close ends the running tails, for the HTTP server's shutdown (see
// http.Server.RegisterOnShutdown), which would otherwise wait for them. It
// is idempotent.
func (p *Page) Close() { p.stopOnce.Do(func() { close(p.stop) }) }

// info answers GetServerInfo's response, as JSON, with whether the tail is
// on.
func (p *Page) info(w http.ResponseWriter, _ *http.Request) {
	b, err := protojson.Marshal(p.srv.ServerInfo())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"server": json.RawMessage(b), "tail": p.tail})
}

// rooms answers a page of rooms, as ListRooms's response in JSON: the
// query's prefix and after narrow it.
func (p *Page) rooms(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := maxRooms
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxRooms {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("limit must be 1 to %d", maxRooms)})
			return
		}
		limit = n
	}
	b := p.srv.Broker()
	rooms, more := b.Rooms(q.Get("after"), q.Get("prefix"), limit)
	resp := &roomcastv1.ListRoomsResponse{Total: uint64(b.RoomCount())}
	for _, ri := range rooms {
		resp.Rooms = append(resp.Rooms, server.RoomInfoProto(ri))
	}
	if more && len(rooms) > 0 {
		resp.NextPageToken = rooms[len(rooms)-1].Name
	}
	out, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(resp)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(out)
}

// tailRoom streams the messages published to the query's room from now on,
// as server-sent events: "joined" with the room's offset and epoch, a
// "message" event per message (the Message in JSON), and "end" with the
// reason when the tail is cut off (it fell behind the backlog, or the room
// was closed). It reads through the hub as a subscriber of the room would,
// and counts as one.
func (p *Page) tailRoom(w http.ResponseWriter, r *http.Request) {
	if !p.tail {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "the live tail is off: start roomcast serve with --status-page-tail to show rooms' messages here"})
		return
	}
	room := r.URL.Query().Get("room")
	if err := broker.ValidateRoom(room); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	select {
	case p.slots <- struct{}{}:
		defer func() { <-p.slots }()
	default:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": fmt.Sprintf("%d tails are running, the most at once; close one", cap(p.slots))})
		return
	}
	ctx := r.Context()
	sub := p.srv.Broker().NewSubscriber("statuspage-" + randomID())
	defer sub.Close()
	res, err := sub.Join(ctx, room, broker.JoinOptions{})
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "joining the room: " + err.Error()})
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	event(w, "joined", map[string]any{"room": room, "offset": strconv.FormatUint(res.Offset, 10), "epoch": res.Epoch})
	flusher.Flush()
	tick := time.NewTicker(keepalive)
	defer tick.Stop()
	for {
		frame, err := sub.Collect(tailBatchBytes)
		if err != nil {
			event(w, "end", map[string]string{"error": err.Error()})
			flusher.Flush()
			return
		}
		if frame != nil {
			sub.Commit()
			if err := sendFrame(w, frame.Materialize()); err != nil {
				return
			}
			flusher.Flush()
			continue
		}
		if !sub.Park() {
			continue
		}
		select {
		case <-sub.Wake():
		case <-tick.C:
			fmt.Fprint(w, ": keepalive\n\n")
			flusher.Flush()
		case <-p.stop:
			event(w, "end", map[string]string{"error": "the server is shutting down"})
			flusher.Flush()
			return
		case <-ctx.Done():
			return
		}
	}
}

// sendFrame writes a "message" event for each message of a collected
// frame, an encoded SubscribeResponse.
func sendFrame(w http.ResponseWriter, frame []byte) error {
	var resp roomcastv1.SubscribeResponse
	if err := proto.Unmarshal(frame, &resp); err != nil {
		return err
	}
	for _, m := range resp.GetBatch().GetMessages() {
		b, err := protojson.Marshal(m)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "event: message\ndata: %s\n\n", b)
	}
	return nil
}

// event writes one server-sent event of kind with v in JSON.
func event(w http.ResponseWriter, kind string, v any) {
	b, _ := json.Marshal(v) // maps of strings and numbers
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", kind, b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// randomID is 80 random bits: the tail's session id, which no publisher can
// name in exclude_session (it is no gRPC session).
func randomID() string {
	var b [10]byte
	rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}
