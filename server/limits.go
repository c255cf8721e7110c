package server

import (
	"fmt"
	"net"
	"net/netip"
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
)

// minHeaderBytes is the smallest header list limit New accepts: a call's
// own headers (path, content type, user agent, deadline) need a few hundred
// bytes.
const minHeaderBytes = 1 << 10

// WithMaxHeaderBytes limits the header list of a call: its metadata and
// HTTP/2 headers, each counted as its name and value plus 32 bytes. A call
// past it is refused before anything of it is kept: the stream is reset, and
// a grpc-go client (which learns the limit when it connects) fails it with
// INTERNAL before sending. The default is DefaultMaxHeaderBytes (16 KiB),
// enough for a bearer token of auth.MaxTokenLen (8 KiB); at least 1 KiB.
func WithMaxHeaderBytes(n int) Option { return func(c *config) { c.maxHeaderBytes = n } }

// limits are the abuse limits' settings, part of config.
type limits struct {
	maxHeaderBytes int
}

func defaultLimits() limits {
	return limits{
		maxHeaderBytes: DefaultMaxHeaderBytes,
	}
}

func (l *limits) validate() error {
	switch {
	case l.maxHeaderBytes < minHeaderBytes || int64(l.maxHeaderBytes) > 1<<32-1:
		return fmt.Errorf("server: max header bytes must be %d to %d, got %d", minHeaderBytes, int64(1<<32-1), l.maxHeaderBytes)
	}
	return nil
}

// clientKey is what anonymous callers are told apart by: their IPv4
// address, or the /64 of their IPv6 address, since one site or host usually
// has a whole /64 to pick addresses from. Other addresses (Unix sockets, in-
// memory listeners) are their String.
func clientKey(addr net.Addr) string {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return addr.String()
	}
	ip := ap.Addr().Unmap().WithZone("")
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().String()
	}
	return ip.String()
}
