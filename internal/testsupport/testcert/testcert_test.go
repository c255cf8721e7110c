package testcert_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/roomcast/roomcast/internal/testsupport/testcert"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve accepts TLS connections with cfg on loopback until the test ends,
// and tells how each one's handshake ended: nil, or why it failed.
func serve(t *testing.T, cfg *tls.Config) (addr string, handshakes <-chan error) {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 16)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			results <- conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	})
	t.Cleanup(func() {
		lis.Close()
		wg.Wait()
	})
	return lis.Addr().String(), results
}

func TestServerAndClientCertificates(t *testing.T) {
	ca, other := testcert.NewCA(t, "test CA"), testcert.NewCA(t, "other CA")
	addr, handshakes := serve(t, &tls.Config{
		Certificates: []tls.Certificate{ca.ServerCert(t)},
		ClientCAs:    ca.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
	})
	for _, tc := range []struct {
		name      string
		cfg       *tls.Config
		serverErr bool // the server refuses the client
		clientErr bool // the client refuses the server
	}{
		{"by address", &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{ca.ClientCert(t, "c")}}, false, false},
		{"by ServerName", &tls.Config{RootCAs: ca.Pool(), ServerName: testcert.ServerName, Certificates: []tls.Certificate{ca.ClientCert(t, "c")}}, false, false},
		{"another name", &tls.Config{RootCAs: ca.Pool(), ServerName: "elsewhere.test", Certificates: []tls.Certificate{ca.ClientCert(t, "c")}}, true, true},
		{"trusting another CA", &tls.Config{RootCAs: other.Pool(), Certificates: []tls.Certificate{ca.ClientCert(t, "c")}}, true, true},
		{"a client of another CA", &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{other.ClientCert(t, "c")}}, true, false},
	} {
		conn, err := tls.Dial("tcp", addr, tc.cfg)
		if err == nil {
			// TLS 1.3 clients finish before the server checks their
			// certificate: a read tells whether it was refused.
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		serverErr := <-handshakes
		if (serverErr != nil) != tc.serverErr {
			t.Errorf("%s: the server's handshake: %v; want an error %v", tc.name, serverErr, tc.serverErr)
		}
		var unknown x509.UnknownAuthorityError
		var hostname x509.HostnameError
		if clientRefused := errors.As(err, &unknown) || errors.As(err, &hostname); clientRefused != tc.clientErr {
			t.Errorf("%s: the client: %v; want a certificate error %v", tc.name, err, tc.clientErr)
		}
	}
}

func TestFiles(t *testing.T) {
	ca := testcert.NewCA(t, "test CA")
	certFile, keyFile := ca.ServerFiles(t)
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Errorf("ServerFiles: %v", err)
	}
	data, err := os.ReadFile(ca.File(t))
	if err != nil {
		t.Fatal(err)
	}
	if block, _ := pem.Decode(data); block == nil || block.Type != "CERTIFICATE" || !ca.Cert.Equal(mustParse(t, block.Bytes)) {
		t.Errorf("File holds %q, not the CA's certificate", data)
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
