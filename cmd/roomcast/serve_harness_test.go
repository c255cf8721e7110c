package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// runningServe is "roomcast serve" running in-process.
type runningServe struct {
	addr   string
	stderr *syncBuffer
}

// startServe runs "roomcast serve" on a free loopback port without metrics,
// with args added, until the test ends; it must then exit with status 0.
// It returns once the server listens.
func startServe(t *testing.T, args ...string) *runningServe {
	t.Helper()
	ctx := testCtx(t)
	serveCtx, stop := context.WithCancel(ctx)
	s := &runningServe{stderr: newSyncBuffer()}
	exited := make(chan int, 1)
	args = append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", ""}, args...)
	go func() { exited <- run(serveCtx, args, io.Discard, s.stderr) }()
	t.Cleanup(func() {
		stop()
		if code := <-exited; code != 0 {
			t.Errorf("serve exited with %d, want 0; stderr:\n%s", code, s.stderr)
		}
	})
	for {
		if m := grpcAddr.FindStringSubmatch(s.stderr.String()); m != nil {
			s.addr = m[1]
			return s
		}
		select {
		case <-s.stderr.changed:
		case code := <-exited:
			exited <- code // for the cleanup
			t.Fatalf("%q exited with %d before serving; stderr:\n%s", args, code, s.stderr)
		case <-ctx.Done():
			t.Fatalf("%q did not serve; stderr:\n%s", args, s.stderr)
		}
	}
}

// dialBroker returns a BrokerService client of addr over creds, closed when
// the test ends.
func dialBroker(t *testing.T, addr string, creds credentials.TransportCredentials) roomcastv1.BrokerServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return roomcastv1.NewBrokerServiceClient(conn)
}

// dialPlaintext is dialBroker without TLS.
func dialPlaintext(t *testing.T, addr string) roomcastv1.BrokerServiceClient {
	return dialBroker(t, addr, insecure.NewCredentials())
}

// publish publishes text to room.
func publish(ctx context.Context, c roomcastv1.BrokerServiceClient, room, text string) (*roomcastv1.PublishResponse, error) {
	return c.Publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: text}})
}

// withBearer returns ctx with "authorization: Bearer token" metadata.
func withBearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// writeFile writes data to a new file name in dir and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// newTestCA makes a self-signed CA with an ECDSA P-256 key.
func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// pool returns a pool of the CA's certificate.
func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue makes a certificate signed by the CA, for a server at 127.0.0.1 or
// for a client, and returns it and its key in PEM.
func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
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

// clientCert returns a client certificate signed by the CA.
func (ca *testCA) clientCert(t *testing.T, name string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, name, x509.ExtKeyUsageClientAuth)
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serverFiles writes a server certificate for 127.0.0.1 signed by the CA,
// and its key, into dir and returns their paths.
func (ca *testCA) serverFiles(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, "roomcast test server", x509.ExtKeyUsageServerAuth)
	return writeFile(t, dir, "server.crt", certPEM), writeFile(t, dir, "server.key", keyPEM)
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
