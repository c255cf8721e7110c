package interop_test

import (
	"bytes"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/faultproxy"
	"github.com/roomcast/roomcast/internal/testsupport/testcert"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// TestTokenAndTLS: the examples send a bearer token, from --token or
// $ROOMCAST_TOKEN, in plaintext to loopback and over TLS trusting a CA file
// (--tls-ca or $ROOMCAST_TLS_CA); without the token the server refuses
// them, and they say so.
func TestTokenAndTLS(t *testing.T) {
	t.Parallel()
	ca := testcert.NewCA(t, "interop CA")
	cert := ca.ServerCert(t)
	quiet := server.WithLogger(slog.New(slog.DiscardHandler))
	plainAddr := testjwt.StartServer(t, quiet)
	tlsAddr := testjwt.StartServer(t, quiet, server.WithGRPCOptions(grpc.Creds(credentials.NewServerTLSFromCert(&cert))))
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	tok := testjwt.Token(t, "interop", time.Now().Add(time.Hour), testjwt.Grants(t, ">", ">", ""))
	caFile := ca.File(t)

	for _, l := range []lang{pythonLang, nodeLang} {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			l.require(t)
			for i, tc := range []struct {
				name            string
				addr            string
				subArgs, subEnv []string
				pubArgs, pubEnv []string
				refusedArgs     []string // a publish without the token
			}{
				{"plaintext to loopback", plainAddr,
					nil, []string{"ROOMCAST_TOKEN=" + tok},
					[]string{"--token", tok}, nil,
					nil},
				{"TLS", tlsAddr,
					[]string{"--token", tok, "--tls-ca", caFile}, nil,
					nil, []string{"ROOMCAST_TOKEN=" + tok, "ROOMCAST_TLS_CA=" + caFile},
					[]string{"--tls-ca", caFile}},
				{"TLS with a server name", "localhost:" + tlsPort,
					[]string{"--tls-ca", caFile, "--tls-server-name", testcert.ServerName}, []string{"ROOMCAST_TOKEN=" + tok},
					[]string{"--token", tok, "--tls-ca", caFile, "--tls-server-name", testcert.ServerName}, nil,
					[]string{"--tls-ca", caFile, "--tls-server-name", testcert.ServerName}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					ctx := testCtx(t)
					room := "interop.token." + l.name + "." + strconv.Itoa(i)
					argv := append(append(l.argv("subscriber"), "--server", tc.addr), append(tc.subArgs, room)...)
					sub := startProc(t, l.name+" subscriber", tc.subEnv, argv...)
					sub.expect(ctx, "joined")

					pub := command(t, tc.pubEnv, append(append(l.argv("publisher"), "--server", tc.addr), append(tc.pubArgs, room, "with a token")...)...)
					var stderr bytes.Buffer
					pub.Stderr = &stderr
					if out, err := pub.Output(); err != nil || !strings.Contains(string(out), `"offset":"`) {
						t.Fatalf("publisher: %v, %q; stderr:\n%s", err, out, stderr.String())
					}
					if m := sub.expect(ctx, "message").msg(t); m.GetText() != "with a token" {
						t.Errorf("subscriber got %v", m)
					}

					refused := command(t, nil, append(append(l.argv("publisher"), "--server", tc.addr), append(tc.refusedArgs, room, "x")...)...)
					out, err := refused.CombinedOutput()
					if code := refused.ProcessState.ExitCode(); err == nil || code != 1 || !strings.Contains(string(out), "UNAUTHENTICATED") {
						t.Errorf("publisher without the token: exit %d (%v); want 1 and UNAUTHENTICATED:\n%s", code, err, out)
					}
				})
			}

			// A token is not sent in plaintext beyond loopback.
			far := command(t, nil, append(l.argv("publisher"), "--server", "192.0.2.1:50051", "--token", tok, "room", "x")...)
			out, _ := far.CombinedOutput()
			if code := far.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), "refusing to send the token in plaintext") {
				t.Errorf("publisher with a token in plaintext beyond loopback: exit %d; want 2 and the reason:\n%s", code, out)
			}
		})
	}
}

// TestServerDown: like the Go CLI, the subscribers wait for a server that
// is not up, saying so at every attempt, and the publishers fail at once,
// saying what to check.
func TestServerDown(t *testing.T) {
	t.Parallel()
	for _, l := range []lang{pythonLang, nodeLang} {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			l.require(t)
			ctx := testCtx(t)
			addr := freeAddr(t)
			refused := "cannot reach " + addr + ": connection refused — is `roomcast serve` running?"

			pub := command(t, nil, append(l.argv("publisher"), "--server", addr, "room", "x")...)
			out, _ := pub.CombinedOutput()
			if code := pub.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), "publisher: "+refused) {
				t.Errorf("publisher: exit %d; want 1 and %q:\n%s", code, refused, out)
			}

			sub := startProc(t, l.name+" subscriber", nil, append(l.argv("subscriber"), "--server", addr, "room")...)
			for range 2 {
				if ev := sub.expect(ctx, "disconnected"); ev.Code != "UNAVAILABLE" {
					t.Fatalf("%s: %s, want UNAVAILABLE", sub.name, ev.line)
				}
			}
			sub.waitStderr(ctx, "twice that it cannot reach the server", func(s string) bool {
				return strings.Count(s, "subscriber: "+refused+"; retrying in ") >= 2
			})
			servertest.StartAt(t, addr, server.WithLogger(slog.New(slog.DiscardHandler)))
			for {
				ev := sub.next(ctx)
				if ev.Event == "joined" {
					break
				}
				if ev.Event != "disconnected" {
					t.Fatalf("%s printed %s while waiting for the server", sub.name, ev.line)
				}
			}
		})
	}
}

// freeAddr returns a loopback address where nothing listens.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

// TestPythonWaitsForASlowHandshake: the Python publisher waits for a
// connection whose handshake takes a second, as a far server's TLS
// handshake or a loaded machine's does, instead of giving up on it.
// grpc-core's option grpc.min_reconnect_backoff_ms is also the shortest
// time a connection attempt is given: set to 100 ms, every handshake
// longer than that failed the call with UNAVAILABLE ("handshaker
// shutdown").
func TestPythonWaitsForASlowHandshake(t *testing.T) {
	t.Parallel()
	requirePython(t)
	ctx := testCtx(t)
	_, addr := servertest.Start(t, server.WithLogger(slog.New(slog.DiscardHandler)))
	proxy := faultproxy.Start(t, addr)
	proxy.Hold()

	pub := command(t, nil, append(pythonLang.argv("publisher"), "--server", proxy.Addr(), "room", "after a slow handshake")...)
	var stdout, stderr bytes.Buffer
	pub.Stdout, pub.Stderr = &stdout, &stderr
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pub.Wait() }()
	for proxy.Accepted() == 0 {
		select {
		case err := <-done:
			t.Fatalf("publisher exited (%v) before it connected; stderr:\n%s", err, stderr.String())
		case <-ctx.Done():
			t.Fatalf("publisher did not connect within %v", waitLimit)
		case <-time.After(10 * time.Millisecond): // polling
		}
	}
	// The fault itself: the handshake's first byte a second late.
	slow := time.NewTimer(time.Second)
	defer slow.Stop()
	select {
	case err := <-done:
		t.Fatalf("publisher gave up on a handshake under way (%v); stderr:\n%s", err, stderr.String())
	case <-slow.C:
	}
	proxy.Resume("")
	select {
	case err := <-done:
		if err != nil || !strings.Contains(stdout.String(), `"offset":"`) {
			t.Fatalf("publisher: %v, %q; stderr:\n%s", err, stdout.String(), stderr.String())
		}
	case <-ctx.Done():
		pub.Process.Kill()
		<-done
		t.Fatalf("publisher did not finish within %v of the handshake; stderr:\n%s", waitLimit, stderr.String())
	}
}
