package redisengine

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"syscall"
)

// tlsHint explains a failure to reach a server over TLS at start that Go's
// errors do not: in TLS 1.3 a server that wants a client certificate
// closes the connection after the handshake, which the client sees as a
// reset; a server that speaks plaintext never answers the handshake.
// Otherwise, and without TLS, it returns "".
func tlsHint(cfg *tls.Config, err error) string {
	if cfg == nil {
		return ""
	}

	switch {
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF):
		if len(cfg.Certificates) == 0 && cfg.GetClientCertificate == nil {
			return " (Redis closed the connection after the TLS handshake: it may require a client certificate, as with tls-auth-clients yes)"
		}
		return " (Redis closed the connection after the TLS handshake: it may not accept the client certificate)"
	case errors.Is(err, context.DeadlineExceeded):
		return " (no answer to the TLS handshake: is this a TLS port of Redis?)"
	}
	return ""
}
