package main

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/internal/testsupport/testcert"
)

func TestServeTLS(t *testing.T) {
	ca := testcert.NewCA(t, "roomcast test CA")
	cert, key := ca.ServerFiles(t)
	s := startServe(t, "--tls-cert", cert, "--tls-key", key)
	ctx := testCtx(t)
	if !strings.Contains(s.stderr.String(), "transport=tls") {
		t.Errorf("serve does not log that it serves TLS:\n%s", s.stderr)
	}

	c := dialBroker(t, s.addr, credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}))
	if resp, err := publish(ctx, c, "room", "over TLS"); err != nil || resp.GetOffset() != 1 {
		t.Fatalf("publish over TLS: %v, %v; want offset 1", resp, err)
	}
	for name, c := range map[string]credentials.TransportCredentials{
		"plaintext":               nil,
		"TLS trusting another CA": credentials.NewTLS(&tls.Config{RootCAs: testcert.NewCA(t, "other CA").Pool()}),
		"TLS 1.1":                 credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}),
	} {
		client := dialPlaintext(t, s.addr)
		if c != nil {
			client = dialBroker(t, s.addr, c)
		}
		if _, err := publish(ctx, client, "room", "refused"); status.Code(err) != codes.Unavailable {
			t.Errorf("publish with %s: %v, want Unavailable", name, err)
		}
	}
}

func TestServeMutualTLS(t *testing.T) {
	serverCA, clientCA := testcert.NewCA(t, "server CA"), testcert.NewCA(t, "client CA")
	cert, key := serverCA.ServerFiles(t)
	s := startServe(t, "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", clientCA.File(t))
	ctx := testCtx(t)
	if !strings.Contains(s.stderr.String(), "transport=mtls") {
		t.Errorf("serve does not log that it serves mutual TLS:\n%s", s.stderr)
	}

	withCert := func(certs ...tls.Certificate) credentials.TransportCredentials {
		return credentials.NewTLS(&tls.Config{RootCAs: serverCA.Pool(), Certificates: certs, MinVersion: tls.VersionTLS12})
	}
	for _, tc := range []struct {
		name  string
		creds credentials.TransportCredentials
		code  codes.Code
	}{
		{"no client certificate", withCert(), codes.Unavailable},
		{"a certificate of another CA", withCert(serverCA.ClientCert(t, "stranger")), codes.Unavailable},
		{"a certificate of the client CA", withCert(clientCA.ClientCert(t, "friend")), codes.OK},
	} {
		c := dialBroker(t, s.addr, tc.creds)
		if _, err := publish(ctx, c, "room", "hello"); status.Code(err) != tc.code {
			t.Errorf("%s: publish: %v, want %v", tc.name, err, tc.code)
		}
	}
}

func TestServeTLSFileErrors(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "CA")
	cert, key := ca.ServerFiles(t)
	notPEM := writeFile(t, dir, "not.pem", []byte("not a certificate\n"))
	ctx := testCtx(t)
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"missing certificate", []string{"--tls-cert", dir + "/missing.crt", "--tls-key", key}, "--tls-cert"},
		{"key of another certificate", []string{"--tls-cert", cert, "--tls-key", writeFile(t, dir, "other.key", otherKey(t, ca))}, "private key does not match"},
		{"client CA without a certificate", []string{"--tls-cert", cert, "--tls-key", key, "--tls-client-ca", notPEM}, "no PEM certificate"},
		{"missing client CA", []string{"--tls-cert", cert, "--tls-key", key, "--tls-client-ca", dir + "/missing.crt"}, "--tls-client-ca"},
	} {
		args := append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", ""}, tc.args...)
		code, stdout, stderr := runCmd(ctx, args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, tc.says) || strings.Contains(stderr, "serving gRPC") {
			t.Errorf("%s: exit %d, stdout %q, stderr:\n%s\nwant exit 1, and %q, before serving", tc.name, code, stdout, stderr, tc.says)
		}
	}
}

// otherKey returns the PEM key of another certificate of ca.
func otherKey(t *testing.T, ca *testcert.CA) []byte {
	_, key := ca.Issue(t, "other", x509.ExtKeyUsageServerAuth)
	return key
}
