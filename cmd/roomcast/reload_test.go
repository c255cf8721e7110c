package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/testcert"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
)

type stream = grpc.BidiStreamingClient[roomcastv1.SubscribeRequest, roomcastv1.SubscribeResponse]

// openStream opens a Subscribe stream in room.
func openStream(t *testing.T, ctx context.Context, c roomcastv1.BrokerServiceClient, room string) stream {
	t.Helper()
	s, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := s.Recv(); err != nil || resp.GetSession() == nil {
		t.Fatalf("the stream began with %v, %v", resp, err)
	}
	if err := s.Send(&roomcastv1.SubscribeRequest{Id: "j", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: room}}}); err != nil {
		t.Fatal(err)
	}
	if resp, err := s.Recv(); err != nil || resp.GetReply().GetError() != nil {
		t.Fatalf("join %s: %v, %v", room, resp, err)
	}
	return s
}

// nextText returns the text of the stream's next message.
func nextText(t *testing.T, s stream) string {
	t.Helper()
	resp, err := s.Recv()
	if err != nil {
		t.Fatalf("waiting for a message: %v", err)
	}
	return resp.GetBatch().GetMessages()[0].GetText()
}

// keyID returns the id of an API key, "rck_<id>_<secret>".
func keyID(key string) string { return strings.Split(key, "_")[1] }

// withoutKey returns the key file content without the entry of key.
func withoutKey(t *testing.T, file, key string) []byte {
	t.Helper()
	content, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for line := range strings.Lines(string(content)) {
		if !strings.Contains(line, `"id":"`+keyID(key)+`"`) {
			kept = append(kept, line)
		}
	}
	if len(kept) == strings.Count(string(content), "\n") {
		t.Fatalf("no entry of %s in %s", keyID(key), content)
	}
	return []byte(strings.Join(kept, ""))
}

// On SIGHUP, serve reads its key and certificate files again: the streams
// of API keys no longer in the file end with UNAUTHENTICATED, the others go
// on, and new handshakes get the new certificate and client CAs. A file
// that fails to load leaves what it held before in use.
func TestBinaryReloadsOnSIGHUP(t *testing.T) {
	ctx := testCtx(t)
	bin := buildBinary(t, ctx)

	t.Run("API keys", func(t *testing.T) {
		dir := t.TempDir()
		file := dir + "/keys.jsonl"
		kept := newKey(t, file, "--subject", "kept", "--publish", "r", "--subscribe", "r")
		gone := newKey(t, file, "--subject", "gone", "--subscribe", "r")
		serve := startProcess(t, ctx, bin, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "", "--api-keys-file", file)
		addr := serve.stderr.waitFor(t, ctx, grpcAddr)[1]
		c := dialPlaintext(t, addr)
		keptStream := openStream(t, withBearer(ctx, kept), c, "r")
		goneStream := openStream(t, withBearer(ctx, gone), c, "r")

		writeFile(t, dir, "keys.jsonl", withoutKey(t, file, gone))
		serve.signal(t, syscall.SIGHUP)
		_, err := goneStream.Recv()
		if st := status.Convert(err); st.Code() != codes.Unauthenticated || !strings.Contains(st.Message(), keyID(gone)) || !strings.Contains(st.Message(), "no longer accepted") {
			t.Errorf("the removed key's stream ended with %v, want UNAUTHENTICATED naming the key", err)
		}
		serve.stderr.waitFor(t, ctx, regexp.MustCompile(`level=INFO msg="reloaded credentials" api_keys=1 streams_revoked=1 streams_changed=0`))
		if _, err := publish(withBearer(ctx, gone), c, "r", "x"); status.Code(err) != codes.Unauthenticated {
			t.Errorf("publish with the removed key: %v", err)
		}
		if _, err := publish(withBearer(ctx, kept), c, "r", "after the reload"); err != nil {
			t.Fatal(err)
		}
		if got := nextText(t, keptStream); got != "after the reload" {
			t.Errorf("the kept key's stream got %q", got)
		}

		// A key file that does not load leaves the keys as they were.
		writeFile(t, dir, "keys.jsonl", []byte("not a key file\n"))
		serve.signal(t, syscall.SIGHUP)
		serve.stderr.waitFor(t, ctx, regexp.MustCompile(`level=ERROR msg="reload failed: still accepting the credentials read before" err=".*keys\.jsonl: line 1`))
		if _, err := publish(withBearer(ctx, kept), c, "r", "after a bad reload"); err != nil {
			t.Errorf("publish with the kept key after a bad reload: %v", err)
		}
		if got := nextText(t, keptStream); got != "after a bad reload" {
			t.Errorf("the kept key's stream got %q", got)
		}
		if _, err := publish(withBearer(ctx, gone), c, "r", "x"); status.Code(err) != codes.Unauthenticated {
			t.Errorf("publish with the removed key after a bad reload: %v", err)
		}
		serve.signal(t, syscall.SIGTERM)
		if code := serve.exitCode(t); code != 0 {
			t.Errorf("serve after SIGTERM: exit %d; stderr:\n%s", code, serve.stderr)
		}
	})

	t.Run("JWT keys", func(t *testing.T) {
		dir := t.TempDir()
		oldSecret := []byte("the old secret of at least 32 bytes, for HS256")
		newSecret := []byte("the new secret of at least 32 bytes, for HS256")
		secret := writeFile(t, dir, "hs256", oldSecret)
		serve := startProcess(t, ctx, bin, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "",
			"--jwt-hmac-secret-file", secret, "--jwt-issuer", testjwt.Issuer, "--jwt-audience", "roomcast")
		addr := serve.stderr.waitFor(t, ctx, grpcAddr)[1]
		c := dialPlaintext(t, addr)
		r, err := auth.ParsePatterns("r")
		if err != nil {
			t.Fatal(err)
		}
		g := auth.Grants{Publish: r}
		claims := testjwt.Claims("svc", "roomcast", time.Now().Add(time.Hour), g)
		oldTok, newTok := testjwt.Sign(t, jwt.SigningMethodHS256, oldSecret, claims), testjwt.Sign(t, jwt.SigningMethodHS256, newSecret, claims)
		if _, err := publish(withBearer(ctx, oldTok), c, "r", "x"); err != nil {
			t.Fatalf("before the reload: %v", err)
		}
		writeFile(t, dir, "hs256", newSecret)
		serve.signal(t, syscall.SIGHUP)
		serve.stderr.waitFor(t, ctx, regexp.MustCompile(`msg="reloaded credentials" jwt_issuer=`))
		if _, err := publish(withBearer(ctx, newTok), c, "r", "x"); err != nil {
			t.Errorf("a token of the new secret: %v", err)
		}
		if _, err := publish(withBearer(ctx, oldTok), c, "r", "x"); status.Code(err) != codes.Unauthenticated {
			t.Errorf("a token of the old secret: %v, want UNAUTHENTICATED", err)
		}
		serve.signal(t, syscall.SIGTERM)
		if code := serve.exitCode(t); code != 0 {
			t.Errorf("serve after SIGTERM: exit %d; stderr:\n%s", code, serve.stderr)
		}
	})

	t.Run("TLS", func(t *testing.T) {
		dir := t.TempDir()
		oldCA, newCA := testcert.NewCA(t, "old server CA"), testcert.NewCA(t, "new server CA")
		oldClients, newClients := testcert.NewCA(t, "old client CA"), testcert.NewCA(t, "new client CA")
		serverFiles := func(ca *testcert.CA) (cert, key string) { // the same paths each time
			certPEM, keyPEM := ca.Issue(t, "roomcast test server", x509.ExtKeyUsageServerAuth)
			return writeFile(t, dir, "server.crt", certPEM), writeFile(t, dir, "server.key", keyPEM)
		}
		cert, key := serverFiles(oldCA)
		clientCA := writeFile(t, dir, "clients.pem", oldClients.PEM)
		serve := startProcess(t, ctx, bin, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "",
			"--tls-cert", cert, "--tls-key", key, "--tls-client-ca", clientCA)
		addr := serve.stderr.waitFor(t, ctx, grpcAddr)[1]
		// publishes over a connection of its own: a handshake of its own.
		publishWith := func(roots, clients *testcert.CA) error {
			c := dialBroker(t, addr, credentials.NewTLS(&tls.Config{RootCAs: roots.Pool(), Certificates: []tls.Certificate{clients.ClientCert(t, "client")}}))
			_, err := publish(ctx, c, "r", "x")
			return err
		}
		if err := publishWith(oldCA, oldClients); err != nil {
			t.Fatalf("before the reload: %v", err)
		}

		serverFiles(newCA) // over the old files
		writeFile(t, dir, "clients.pem", newClients.PEM)
		serve.signal(t, syscall.SIGHUP)
		serve.stderr.waitFor(t, ctx, regexp.MustCompile(`msg="reloaded the TLS certificate" transport=mtls`))
		if err := publishWith(newCA, newClients); err != nil {
			t.Errorf("with the new CAs: %v", err)
		}
		if err := publishWith(oldCA, newClients); status.Code(err) != codes.Unavailable {
			t.Errorf("trusting only the old server CA: %v, want UNAVAILABLE", err)
		}
		if err := publishWith(newCA, oldClients); status.Code(err) != codes.Unavailable {
			t.Errorf("with a certificate of the old client CA: %v, want UNAVAILABLE", err)
		}

		// A certificate that does not load leaves the one in use.
		writeFile(t, dir, "server.crt", []byte("not a certificate\n"))
		serve.signal(t, syscall.SIGHUP)
		serve.stderr.waitFor(t, ctx, regexp.MustCompile(`level=ERROR msg="reload failed: still serving the TLS certificate and client CAs read before" err=`))
		if err := publishWith(newCA, newClients); err != nil {
			t.Errorf("after a bad reload: %v", err)
		}
		serve.signal(t, syscall.SIGTERM)
		if code := serve.exitCode(t); code != 0 {
			t.Errorf("serve after SIGTERM: exit %d; stderr:\n%s", code, serve.stderr)
		}
	})
}
