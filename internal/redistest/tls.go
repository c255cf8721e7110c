package redistest

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/roomcast/roomcast/internal/redisproc"
	"github.com/roomcast/roomcast/internal/testsupport/testcert"
)

// TLS is what a client of a TLS server needs: the CA that signed the
// server's certificate, and a client certificate it signed too, as values
// and as PEM files (mode 0600) for the command line.
type TLS struct {
	CA                            *testcert.CA
	CAFile                        string
	ClientCertFile, ClientKeyFile string
	ClientCert                    tls.Certificate

	proc *redisproc.TLS
}

func newTLS(t testing.TB, authClients bool) *TLS {
	t.Helper()
	ca := testcert.NewCA(t, "roomcast test redis CA")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	srvCert, srvKey := ca.Issue(t, "redis", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.Issue(t, "roomcast", x509.ExtKeyUsageClientAuth)
	pair, err := tls.X509KeyPair(cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	s := &TLS{
		CA: ca, CAFile: write("ca.crt", ca.PEM),
		ClientCertFile: write("client.crt", cliCert), ClientKeyFile: write("client.key", cliKey),
		ClientCert: pair,
	}
	s.proc = &redisproc.TLS{
		CertFile: write("redis.crt", srvCert), KeyFile: write("redis.key", srvKey), CAFile: s.CAFile,
		AuthClients: authClients, Client: s.ClientConfig(),
	}
	return s
}

// ClientConfig returns a client configuration that trusts the server and
// presents the client certificate; nil on a nil TLS (plaintext).
func (s *TLS) ClientConfig() *tls.Config {
	if s == nil {
		return nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: s.CA.Pool(), Certificates: []tls.Certificate{s.ClientCert}}
}
