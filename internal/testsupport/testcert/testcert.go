// Package testcert makes certificates for tests: a certificate authority of
// the test's own, and the server and client certificates it signs. Keys are
// ECDSA P-256, quick to make; every certificate is valid from an hour before
// it is made to an hour after.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ServerName is the DNS name that server certificates carry, besides the
// address 127.0.0.1: a client that dials "localhost" can check the server
// against it.
const ServerName = "roomcast.test"

// CA is a certificate authority made for one test.
type CA struct {
	// Cert is the CA's own certificate, which clients trust.
	Cert *x509.Certificate
	// PEM is Cert in PEM form, as a CA file holds it.
	PEM []byte
	key *ecdsa.PrivateKey
}

// NewCA makes a self-signed CA whose certificate has name as common name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := template(t, name)
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid, tmpl.IsCA = true, true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: cert, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}
}

// Pool returns a pool that holds the CA's certificate alone, for a
// tls.Config's RootCAs or ClientCAs.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// File writes the CA's certificate to a PEM file in a temporary directory
// and returns its path.
func (ca *CA) File(t testing.TB) string {
	t.Helper()
	return writeFile(t, t.TempDir(), "ca.crt", ca.PEM)
}

// Issue makes a certificate signed by the CA with name as common name, and
// returns it and its private key (PKCS #8) in PEM. With
// x509.ExtKeyUsageServerAuth it is a server's, for 127.0.0.1 and
// ServerName; with x509.ExtKeyUsageClientAuth a client's.
func (ca *CA) Issue(t testing.TB, name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key := newKey(t)
	tmpl := template(t, name)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{ServerName}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
}

// ServerCert returns a server certificate signed by the CA, with its key,
// for an in-process server's credentials.
func (ca *CA) ServerCert(t testing.TB) tls.Certificate {
	t.Helper()
	return ca.keyPair(t, "roomcast test server", x509.ExtKeyUsageServerAuth)
}

// ClientCert returns a client certificate signed by the CA for name, with
// its key.
func (ca *CA) ClientCert(t testing.TB, name string) tls.Certificate {
	t.Helper()
	return ca.keyPair(t, name, x509.ExtKeyUsageClientAuth)
}

// ServerFiles writes a server certificate signed by the CA, and its key, to
// PEM files in a temporary directory and returns their paths, for a server
// that reads them.
func (ca *CA) ServerFiles(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM := ca.Issue(t, "roomcast test server", x509.ExtKeyUsageServerAuth)
	dir := t.TempDir()
	return writeFile(t, dir, "server.crt", certPEM), writeFile(t, dir, "server.key", keyPEM)
}

func (ca *CA) keyPair(t testing.TB, name string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	certPEM, keyPEM := ca.Issue(t, name, usage)
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// template returns what every certificate has: a common name, a random
// serial number (certificates of one issuer must not share one), and two
// hours of validity around now.
func template(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
