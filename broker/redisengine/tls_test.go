package redisengine_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/brokertest"
	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/internal/redistest"
	"github.com/roomcast/roomcast/internal/testsupport/testcert"
)

// The contract holds over TLS, PUB/SUB connections included, with Redis
// requiring client certificates: a plaintext connection would be refused.
func TestContractOverTLS(t *testing.T) {
	srv := redistest.Start(t, redistest.WithClientCerts())
	var cases atomic.Int64
	brokertest.Run(t, func(t testing.TB, opts ...broker.Option) *broker.Hub {
		t.Helper()
		cfg := redisengine.Config{Addrs: []string{srv.Addr}, Prefix: fmt.Sprint("tls", cases.Add(1)), TLS: srv.TLS.ClientConfig()}
		hub, err := broker.New(append(opts, broker.WithEngine(redisengine.Factory(context.Background(), cfg)))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hub.Close() })
		return hub
	})
}

// New fails, naming the server and the cause, when TLS cannot be set up:
// a server that wants a client certificate and gets none (a TLS 1.3
// client may see the server's alert, or only the connection closed), one whose
// certificate no trusted CA signed, one that speaks plaintext.
func TestNewTLSFailures(t *testing.T) {
	certs := redistest.Start(t, redistest.WithClientCerts())
	plain := redistest.Start(t)
	noCert := certs.TLS.ClientConfig()
	noCert.Certificates = nil
	wrongCA := certs.TLS.ClientConfig()
	wrongCA.RootCAs = testcert.NewCA(t, "another CA").Pool()
	for _, tc := range []struct {
		name string
		srv  *redistest.Server
		cfg  *tls.Config
		says string // a regular expression
	}{
		{"no client certificate", certs, noCert, "certificate required|may require a client certificate"},
		{"wrong CA", certs, wrongCA, "tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{"plaintext server", plain, certs.TLS.ClientConfig(), "TLS handshake"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := redisengine.New(testCtx(t), redisengine.Config{Addrs: []string{tc.srv.Addr}, TLS: tc.cfg, Timeout: waitLimit / 10})
			if err == nil {
				e.Close()
				t.Fatal("New succeeded")
			}
			if !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), tc.srv.Addr) || !regexp.MustCompile(tc.says).MatchString(err.Error()) {
				t.Errorf("New: %v, want ErrUnavailable naming %s and %q", err, tc.srv.Addr, tc.says)
			}
		})
	}
}
