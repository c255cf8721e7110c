// Package loopback tells addresses that stay on this machine from those
// that may cross a network, for the rules about plaintext: the server
// serves it, and the client sends a credential over it, only on loopback
// unless told otherwise.
package loopback

import (
	"net"
	"net/netip"
	"strings"
)

// Host reports whether host, the host part of an address, can only be a
// loopback address: "localhost", or an IP address in 127.0.0.0/8 or ::1
// (with or without brackets). An empty host (every interface), any other
// name and any other address are not.
func Host(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil && ip.Unmap().IsLoopback()
}

// Target reports whether every address a gRPC target names is on this
// machine: a Unix socket ("unix:", "unix-abstract:"), or "host:port",
// "dns:///host:port", "passthrough:///host:port", "ipv4:" or "ipv6:" lists
// whose hosts are all loopback (see Host). Targets of other schemes, such as
// "xds:", are not: where they lead is decided elsewhere.
func Target(target string) bool {
	scheme, rest, ok := strings.Cut(target, ":")
	switch {
	case ok && (scheme == "unix" || scheme == "unix-abstract"):
		return true
	case ok && (scheme == "ipv4" || scheme == "ipv6"):
		for addr := range strings.SplitSeq(rest, ",") {
			if !hostPort(addr) {
				return false
			}
		}
		return rest != ""
	case ok && (scheme == "dns" || scheme == "passthrough") && strings.HasPrefix(rest, "//"):
		_, path, ok := strings.Cut(rest[2:], "/") // drop the authority, such as a DNS server
		return ok && hostPort(path)
	}
	return hostPort(target)
}

// hostPort reports whether addr, "host:port" or a bare host, is loopback.
func hostPort(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	return Host(host)
}
