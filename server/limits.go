package server

import (
	"fmt"
	"net"
	"net/netip"
	"time"
)

// The limits that keep the server up under abuse: what one connection, one
// call and one credential may cost before anything else is checked. Their
// options are here; the checks are where the cost would arise (listener.go,
// tap.go, decode.go, access.go).

// Defaults of the abuse limits.
const (
	// DefaultMaxHeaderBytes bounds a call's header list (metadata, as HTTP/2
	// counts it): room for a JWT of auth.MaxTokenLen and the rest.
	DefaultMaxHeaderBytes = 16 << 10
	// DefaultMaxConnections bounds the client connections open at once.
	DefaultMaxConnections = 10_000
	// DefaultMaxConnectionIdle is how long a connection may have no call in
	// flight before the server closes it.
	DefaultMaxConnectionIdle = 5 * time.Minute
	// DefaultAuthTimeout is how long a connection may go without an
	// authenticated call, when the server authenticates.
	DefaultAuthTimeout = 10 * time.Second
	// DefaultMaxStreamsPerCredential bounds the Subscribe streams one
	// credential may have open at once.
	DefaultMaxStreamsPerCredential = 1000
	// DefaultMaxPublishStreamsPerCredential bounds the PublishStream
	// streams one credential may have open at once: a publisher needs one,
	// a fleet of a hundred publishing instances of one key one each. Each
	// may hold a receive window of publishes the server has not read, and
	// its reader up to publishReadAhead bytes of requests read and not yet
	// answered, so the bound is also one on that memory: about 100 × 2.3
	// MiB by default.
	DefaultMaxPublishStreamsPerCredential = 100
	// DefaultMaxPausedStreams and DefaultMaxPausedStreamsPerCredential
	// bound the Subscribe streams whose readers are paused at once, after a
	// refused command or behind replies their client does not read, over
	// the server and per credential (see pausedreaders.go). Each may hold a receive window of commands unread,
	// about twice the window's bytes in grpc-go for tiny commands: with the
	// default 256 KiB windows, 512 MiB over the server and 32 MiB for one
	// credential, where a credential's thousand streams held 0.5 GB. Only
	// streams that keep sending past the command rates stay paused; 64 is
	// a fleet of 64 clients of one key refused at once.
	DefaultMaxPausedStreams              = 1024
	DefaultMaxPausedStreamsPerCredential = 64
	// DefaultReadRate and DefaultReadBurst bound the History and Presence
	// calls of one credential: a second, and in a burst (a client
	// resyncing every room it rejoins after a reconnect, say).
	DefaultReadRate  = 100
	DefaultReadBurst = 200
	// DefaultAnonymousPublishRate and DefaultAnonymousPublishBurst bound the
	// publishes of each anonymous caller (client address) of a server that
	// authenticates others: a fiftieth of serve's rate for a credential,
	// plenty for people (a hundred of them behind one address, chatting),
	// and it keeps one address's flood of unary publishes (each a call of
	// its own) to a small share of the server. On the web listener a call
	// costs the server two and a half times what it does on the gRPC port
	// (BenchmarkPublishServe): at 1000 a second, bursts of 1000, one
	// address's loop held a bystander's p99 at 3.1 to 4.7 times its
	// baseline there (issue #13 (i)); at 200, 1.3 to 2.8 times.
	DefaultAnonymousPublishRate  = 200
	DefaultAnonymousPublishBurst = 200
	// DefaultCredentialCommandRate and DefaultCredentialCommandBurst bound
	// the Subscribe commands of one credential over all its streams: at
	// once, a client rejoining its 256 rooms (the most a stream may be in)
	// seven times over, or 2,000 clients of one key rejoining a room each;
	// then 2,000 a second. A flood of joins and leaves from one credential
	// (attack (e) of issue #13) made the server run 10,000 of them in its
	// first moment and 10,000 a second after that at the earlier defaults,
	// and a bystander's p99 rose past three times its baseline (a median of
	// 3.1× in 12 runs against 1.8× at these, on 2 shared cores; see
	// docs/security.md). A larger fleet of one key reconnecting at once is
	// served at the rate past the burst (a Go client sends a refused rejoin
	// again after the reply's retry_after): raise both for it to be served
	// at once.
	DefaultCredentialCommandRate  = 2000
	DefaultCredentialCommandBurst = 2000
	// DefaultMaxRefusedCommands is how many of a Subscribe stream's
	// commands the rate limits may refuse within a second before the stream
	// is ended: a stream's burst (DefaultCommandBurst). A client that reads
	// its replies and slows down is refused a few. The pause after each
	// refusal (see cmdrate.go) keeps any stream under a dozen refusals a
	// second, so only a setting below that ends streams; the limit stays as
	// a bound on what a refusal may cost should the pauses change.
	DefaultMaxRefusedCommands = 1000
	// DefaultMaxRefusedCalls is how many calls on one connection may be
	// refused before they run (UNAUTHENTICATED, or RESOURCE_EXHAUSTED for the
	// streams per credential or owing bytes of the publish or read byte
	// rate; not past a rate, see crowdedRefusal) within a second before
	// the connection is closed. An honest client is refused a handful and
	// backs off; a thousand a second is a loop that ignores every answer.
	// Past 100 within the second, the tap pauses a connection's
	// reading after each call it refuses (see refusedInTap), which keeps
	// those near 110 a second: the limit bounds the calls refused later,
	// by a handler, which are not paused.
	DefaultMaxRefusedCalls = 1000
	// DefaultAddressRefusedCalls (200) is how many calls the connections of
	// one client address may have refused before they run within a second,
	// in all, before the tap pauses each connection refused further (see
	// addrrefusals.go): twice a connection's allowance (100), so that a loop
	// spread over many connections of one address is read about 200 times
	// a second and a dozen more for each connection, not a hundred for
	// each.
	DefaultAddressRefusedCalls = 2 * freeRefusedCalls
	// DefaultPublishByteRate and DefaultPublishByteBurst bound the bytes of
	// messages one credential may publish: 32 MiB a second, in bursts of 8
	// MiB. That is 3,300 bytes a message at the default publish rate, 32
	// messages a second at the default message limit and 8 of them at once:
	// what a chatty backend needs, or a fleet sharing a key. Every accepted
	// byte is read, copied and retained: under issue #13's attack (b), 1 MiB
	// messages to new rooms from one credential, the previous 64 MiB a
	// second in bursts of 64 MiB cost the server 1.1 to 1.8 s of CPU in 5 s
	// and 440 to 550 MiB of memory, this 0.8 to 1.2 s and 200 to 240 MiB.
	DefaultPublishByteRate  = 32 << 20
	DefaultPublishByteBurst = 8 << 20
	// DefaultReadByteRate and DefaultReadByteBurst bound the bytes of the
	// History and Presence answers one credential is sent: 4 MiB a second,
	// in bursts of 16 MiB. That is four pages a second of 1000 messages of
	// 1 KiB each, or sixteen of the largest answers (1 MiB) at once, for a
	// client resyncing its rooms; a flood of the largest answers, which
	// the read rate alone let through at about 100 MiB a second, is held
	// to a few of them a second.
	DefaultReadByteRate  = 4 << 20
	DefaultReadByteBurst = 16 << 20
)

// minHeaderBytes is the smallest header list limit New accepts: a call's
// own headers (path, content type, user agent, deadline) need a few hundred
// bytes.
const minHeaderBytes = 1 << 10

// WithMaxHeaderBytes limits the header list of a call: its metadata and
// HTTP/2 headers, each counted as its name and value plus 32 bytes. A grpc-go
// client learns the limit when it connects and fails a call past it with
// INTERNAL before sending it. A client that sends one anyway has its
// connection sent GOAWAY (ENHANCE_YOUR_CALM) and closed before gRPC decodes
// the list (see headerguard.go), logged with its address at most once a
// second and counted in roomcast_header_flood_closes_total. The check
// applies to plaintext and to the credentials of WithTransportCredentials,
// but not to credentials given with WithGRPCOptions, where gRPC alone
// refuses the stream. ServeWeb gives net/http the limit as MaxHeaderBytes
// (net/http answers a list past it with 431), and closes an HTTP/2
// connection as above past twice net/http's own list limit for HTTP/2 (the
// limit and 320 bytes). The default is DefaultMaxHeaderBytes (16 KiB), enough
// for a bearer token of auth.MaxTokenLen (8 KiB); at least 1 KiB.
func WithMaxHeaderBytes(n int) Option { return func(c *config) { c.maxHeaderBytes = n } }

// WithMaxConnections limits the client connections open at once, over all
// the listeners the server serves; a connection past it is closed as soon
// as it is accepted (its client sees UNAVAILABLE and retries later), and
// the log says so at most once a minute. The default is
// DefaultMaxConnections (10,000). Mind the process's limit on open files
// too (ulimit -n).
func WithMaxConnections(n int) Option { return func(c *config) { c.maxConns = n } }

// WithMaxConnectionIdle closes a connection that has had no call in flight
// for d, with a GOAWAY: a client reconnects when it next calls. Pings do not
// count as calls. The default is DefaultMaxConnectionIdle (5 minutes); 0
// keeps idle connections for good.
func WithMaxConnectionIdle(d time.Duration) Option { return func(c *config) { c.maxConnIdle = d } }

// WithAuthTimeout closes a connection that has made no authenticated call
// within d of being accepted (a TLS handshake counts against it). Calls
// that fail authentication, and calls to health and reflection, do not
// count: a connection used only for health checks is closed too, and its
// checker reconnects. It applies only with WithAuthenticator. The default is
// DefaultAuthTimeout (10 seconds); 0 turns it off.
func WithAuthTimeout(d time.Duration) Option { return func(c *config) { c.authTimeout = d } }

// WithMaxStreamsPerCredential limits the Subscribe streams one credential
// may have open at once, over all its connections; anonymous callers count
// per client address. A stream past it ends at once with
// RESOURCE_EXHAUSTED. The default is DefaultMaxStreamsPerCredential (1000).
func WithMaxStreamsPerCredential(n int) Option { return func(c *config) { c.maxCredStreams = n } }

// WithMaxPublishStreamsPerCredential limits the PublishStream streams one
// credential may have open at once, over all its connections; anonymous
// callers count per client address. A stream past it is refused from its
// headers with RESOURCE_EXHAUSTED. The default is
// DefaultMaxPublishStreamsPerCredential (100).
func WithMaxPublishStreamsPerCredential(n int) Option {
	return func(c *config) { c.maxCredPublishStreams = n }
}

// WithReadRate limits each credential's History and Presence calls, taken
// together, to perSecond, with bursts of burst (a token bucket); past it, a
// call fails with RESOURCE_EXHAUSTED and a RetryInfo detail. Anonymous
// callers count per client address. The default is DefaultReadRate (100) a
// second with bursts of DefaultReadBurst (200); 0 means no limit.
func WithReadRate(perSecond float64, burst int) Option {
	return func(c *config) { c.readRate, c.readBurst = perSecond, burst }
}

// WithAnonymousPublishRate limits the publishes of each anonymous caller of
// a server with an authenticator (admitted by auth.WithAnonymous), counted
// per client address, an IPv6 one by its /64, to perSecond with bursts of
// burst, instead of WithPublishRate's rate; past it, a publish fails with
// RESOURCE_EXHAUSTED and a RetryInfo detail, as past that rate. It is never
// more than WithPublishRate's rate and burst, each. On a server without an
// authenticator every caller is anonymous and WithPublishRate applies. The default is DefaultAnonymousPublishRate (200) a second with
// bursts of DefaultAnonymousPublishBurst (200); 0 means WithPublishRate's
// limit applies to them too.
func WithAnonymousPublishRate(perSecond float64, burst int) Option {
	return func(c *config) { c.anonPublishRate, c.anonPublishBurst = perSecond, burst }
}

// WithCredentialCommandRate limits each credential's Subscribe commands,
// over all its streams, to perSecond, with bursts of burst; a command past
// it gets a RESOURCE_EXHAUSTED reply saying when to retry, and the stream
// stays up. Anonymous callers count per client address. It applies beside
// WithCommandRate's limit per stream, which alone would give a credential
// with n streams n times the rate. The default is
// DefaultCredentialCommandRate (2000) a second with bursts of
// DefaultCredentialCommandBurst (2000); 0 means no limit.
func WithCredentialCommandRate(perSecond float64, burst int) Option {
	return func(c *config) { c.credCommandRate, c.credCommandBurst = perSecond, burst }
}

// WithMaxRefusedCommands ends a Subscribe stream with RESOURCE_EXHAUSTED
// ("too many commands past the rate limit") once more than n of its
// commands are refused by the rate limits (WithCommandRate,
// WithCredentialCommandRate) within a second, rather than answering each
// with an error reply; it is counted in roomcast_command_flood_ends_total.
// Fewer refusals get their error replies. The default is
// DefaultMaxRefusedCommands (1000); 0 never ends a stream for it.
func WithMaxRefusedCommands(n int) Option { return func(c *config) { c.maxRefusedCommands = n } }

// WithMaxRefusedCalls closes a client connection once more than n of its
// calls are refused before they run within a second: UNAUTHENTICATED by
// WithAuthenticator, RESOURCE_EXHAUSTED by WithMaxStreamsPerCredential,
// WithPublishByteRate or WithReadByteRate. Calls refused by WithPublishRate or WithReadRate do
// not count: those that ignore their RetryInfo pause the connection instead
// (see freeCrowdedRefusals). Its calls in flight fail with UNAVAILABLE; the closure is
// logged with the client's address at most once a second and counted in
// roomcast_connections_refusal_closes_total. The default is
// DefaultMaxRefusedCalls (1000); 0 never closes a connection for it.
func WithMaxRefusedCalls(n int) Option { return func(c *config) { c.maxRefusedCalls = n } }

// WithAddressRefusedCalls pauses the reading of a connection whose call the
// tap refused (as WithMaxRefusedCalls counts them) once its client address
// (an IPv4 address, or an IPv6 /64) has had more than n refused within a
// second over all its connections: 1 ms, doubled for each further refusal
// of the connection's own within the second, at most a second, so that a
// connection that shares the address with a loop and is refused once is
// paused a millisecond. Each connection is also paused past its own 100
// within a second, whatever n is. Behind a proxy or load balancer that
// hides its clients' addresses, they all share one: raise n to what they
// may be refused together, or turn it off. The default is
// DefaultAddressRefusedCalls (200); 0 turns the address's allowance off.
func WithAddressRefusedCalls(n int) Option { return func(c *config) { c.addressRefusedCalls = n } }

// WithPublishByteRate limits the bytes of messages (as
// WithMaxMessageBytes counts them) that each credential publishes to
// perSecond, in bursts of burst. A publish is let through while its
// credential owes nothing, and charged as it is published, so a message of any
// size passes and the average is held; while the credential owes, its
// Publish calls and PublishStream streams are refused (with
// WithAuthenticator, from their headers, before the request is read), and
// its publishes on an open PublishStream are refused, all with RESOURCE_EXHAUSTED and a google.rpc.RetryInfo saying
// when it owes nothing. Anonymous callers count per client address. The
// default is DefaultPublishByteRate (32 MiB) a second with bursts of
// DefaultPublishByteBurst (8 MiB); 0 means no limit.
func WithPublishByteRate(perSecond float64, burst int) Option {
	return func(c *config) { c.publishByteRate, c.publishByteBurst = perSecond, burst }
}

// WithReadByteRate limits the bytes of the History and Presence answers
// (as encoded) that each credential is sent, taken together, to perSecond,
// in bursts of burst. A call is let through while its credential owes
// nothing, and the bytes of its answer charged once it is built, so an
// answer of any size passes and the average is held; while the credential
// owes, its History and Presence calls are refused (over gRPC from their
// headers, before the request is read) with RESOURCE_EXHAUSTED and a
// google.rpc.RetryInfo saying when it owes nothing. Anonymous callers
// count per client address. The default is DefaultReadByteRate (4 MiB) a
// second with bursts of DefaultReadByteBurst (16 MiB); 0 means no limit.
func WithReadByteRate(perSecond float64, burst int) Option {
	return func(c *config) { c.readByteRate, c.readByteBurst = perSecond, burst }
}

// WithMaxPausedStreams limits the Subscribe streams whose readers are
// paused at once, after a refused command or behind replies their client
// does not read, over the server (maxServer) and per credential
// (perCredential; anonymous callers per client address). A stream that
// would pause past either ends with RESOURCE_EXHAUSTED instead, which frees
// the receive window of commands a paused reader leaves unread (see
// WithReceiveWindows). The
// defaults are DefaultMaxPausedStreams (1024) and
// DefaultMaxPausedStreamsPerCredential (64).
func WithMaxPausedStreams(maxServer, perCredential int) Option {
	return func(c *config) { c.maxPaused, c.maxCredPaused = maxServer, perCredential }
}

// limits are the abuse limits' settings, part of config.
type limits struct {
	maxHeaderBytes        int
	maxConns              int
	maxConnIdle           time.Duration
	authTimeout           time.Duration
	maxCredStreams        int
	maxCredPublishStreams int
	maxPaused             int // see pausedreaders.go
	maxCredPaused         int

	acceptPaceAfter int // see acceptpace.go
	acceptPace      float64
	acceptPaceBurst int

	maxPendingPerAddr int // see addrcap.go

	refusedHold    time.Duration // see tarpit.go
	refusedHeldMax int           // 0: from the open-file limit

	readRate  float64
	readBurst int

	anonPublishRate  float64 // anonymous callers of a server with an authenticator
	anonPublishBurst int

	credCommandRate  float64
	credCommandBurst int

	publishByteRate  float64
	publishByteBurst int

	readByteRate  float64
	readByteBurst int

	maxRefusedCommands int // per stream, within a second
	maxRefusedCalls    int // per connection, within a second
	// Refused calls of one client address within a second before its
	// connections are paused; 0: none per address.
	addressRefusedCalls int

	streamWindow, connWindow int // HTTP/2 receive windows (windows.go); 0: dynamic

	maxUnfinished, maxUnfinishedPerAddr int64 // see unfinished.go; 0: not bounded
	unfinishedReadRate                  int64 // see unfinishedpace.go; 0: not paced
	requestFrameRate                    int   // see readpace.go; 0: not paced

	largeTurn int // the smallest request decoded in a turn (largeturns.go); 0: none is
}

func defaultLimits() limits {
	return limits{
		maxHeaderBytes:        DefaultMaxHeaderBytes,
		maxConns:              DefaultMaxConnections,
		maxConnIdle:           DefaultMaxConnectionIdle,
		authTimeout:           DefaultAuthTimeout,
		maxCredStreams:        DefaultMaxStreamsPerCredential,
		maxCredPublishStreams: DefaultMaxPublishStreamsPerCredential,
		maxPaused:             DefaultMaxPausedStreams,
		maxCredPaused:         DefaultMaxPausedStreamsPerCredential,

		acceptPaceAfter: DefaultAcceptPaceAfter,
		acceptPace:      DefaultAcceptPace,
		acceptPaceBurst: DefaultAcceptPaceBurst,

		maxPendingPerAddr: DefaultMaxPendingPerAddress,

		refusedHold: DefaultRefusedHold,

		readRate:  DefaultReadRate,
		readBurst: DefaultReadBurst,

		anonPublishRate:  DefaultAnonymousPublishRate,
		anonPublishBurst: DefaultAnonymousPublishBurst,

		credCommandRate:  DefaultCredentialCommandRate,
		credCommandBurst: DefaultCredentialCommandBurst,

		publishByteRate:  DefaultPublishByteRate,
		publishByteBurst: DefaultPublishByteBurst,

		readByteRate:  DefaultReadByteRate,
		readByteBurst: DefaultReadByteBurst,

		maxRefusedCommands: DefaultMaxRefusedCommands,
		maxRefusedCalls:    DefaultMaxRefusedCalls,

		addressRefusedCalls: DefaultAddressRefusedCalls,

		streamWindow: DefaultStreamWindow,
		connWindow:   DefaultConnWindow,

		maxUnfinished:        DefaultMaxUnfinishedBytes,
		maxUnfinishedPerAddr: DefaultMaxUnfinishedBytesPerAddress,
		unfinishedReadRate:   DefaultUnfinishedReadRate,
		requestFrameRate:     DefaultRequestFrameRate,

		largeTurn: DefaultLargeRequestTurn,
	}
}

func (l *limits) validate() error {
	switch {
	case l.maxHeaderBytes < minHeaderBytes || int64(l.maxHeaderBytes) > 1<<32-1:
		return fmt.Errorf("server: max header bytes must be %d to %d, got %d", minHeaderBytes, int64(1<<32-1), l.maxHeaderBytes)
	case l.maxConns < 1:
		return fmt.Errorf("server: max connections must be positive, got %d", l.maxConns)
	case l.maxConnIdle < 0:
		return fmt.Errorf("server: max connection idle must not be negative, got %v", l.maxConnIdle)
	case l.authTimeout < 0:
		return fmt.Errorf("server: auth timeout must not be negative, got %v", l.authTimeout)
	case l.maxCredStreams < 1:
		return fmt.Errorf("server: streams per credential must be positive, got %d", l.maxCredStreams)
	case l.maxCredPublishStreams < 1:
		return fmt.Errorf("server: publish streams per credential must be positive, got %d", l.maxCredPublishStreams)
	case l.maxPaused < 1 || l.maxCredPaused < 1:
		return fmt.Errorf("server: paused streams must be positive, got %d over the server and %d per credential", l.maxPaused, l.maxCredPaused)
	case l.readRate < 0 || (l.readRate > 0 && l.readBurst < 1):
		return fmt.Errorf("server: read rate needs a positive burst, got %v/s burst %d", l.readRate, l.readBurst)
	case l.anonPublishRate < 0 || (l.anonPublishRate > 0 && l.anonPublishBurst < 1):
		return fmt.Errorf("server: anonymous publish rate needs a positive burst, got %v/s burst %d", l.anonPublishRate, l.anonPublishBurst)
	case l.credCommandRate < 0 || (l.credCommandRate > 0 && l.credCommandBurst < 1):
		return fmt.Errorf("server: credential command rate needs a positive burst, got %v/s burst %d", l.credCommandRate, l.credCommandBurst)
	case l.publishByteRate < 0 || (l.publishByteRate > 0 && l.publishByteBurst < 1):
		return fmt.Errorf("server: publish byte rate needs a positive burst, got %v/s burst %d", l.publishByteRate, l.publishByteBurst)
	case l.readByteRate < 0 || (l.readByteRate > 0 && l.readByteBurst < 1):
		return fmt.Errorf("server: read byte rate needs a positive burst, got %v/s burst %d", l.readByteRate, l.readByteBurst)
	case l.largeTurn < 0:
		return fmt.Errorf("server: large request turn must not be negative, got %d", l.largeTurn)
	case l.maxRefusedCommands < 0:
		return fmt.Errorf("server: max refused commands must not be negative, got %d", l.maxRefusedCommands)
	case l.maxRefusedCalls < 0:
		return fmt.Errorf("server: max refused calls must not be negative, got %d", l.maxRefusedCalls)
	case l.addressRefusedCalls < 0:
		return fmt.Errorf("server: refused calls per address must not be negative, got %d", l.addressRefusedCalls)
	}
	if err := l.validateAcceptPace(); err != nil {
		return err
	}
	if err := l.validatePendingPerAddress(); err != nil {
		return err
	}
	if err := l.validateRefusedHold(); err != nil {
		return err
	}
	return l.validateWindows()
}

// clientKey is what anonymous callers are told apart by: their IPv4
// address, or the /64 of their IPv6 address, since one site or host usually
// has a whole /64 to pick addresses from. Other addresses (Unix sockets, in-
// memory listeners) are their String.
func clientKey(addr net.Addr) string { return string(appendClientKey(nil, addr)) }

// appendClientKey appends clientKey(addr) to b. A TCP address, what every
// call over the network has, is read as it is, not printed and parsed.
func appendClientKey(b []byte, addr net.Addr) []byte {
	var ip netip.Addr
	if tcp, ok := addr.(*net.TCPAddr); ok {
		if ip, ok = netip.AddrFromSlice(tcp.IP); !ok {
			return append(b, addr.String()...)
		}
	} else {
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return append(b, addr.String()...)
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().AppendTo(b)
	}
	return ip.AppendTo(b)
}
