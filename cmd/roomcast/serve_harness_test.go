package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
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
	return roomcastv1.NewBrokerServiceClient(servertest.Dial(t, addr, grpc.WithTransportCredentials(creds)))
}

// dialPlaintext is dialBroker without TLS.
func dialPlaintext(t *testing.T, addr string) roomcastv1.BrokerServiceClient {
	t.Helper()
	return roomcastv1.NewBrokerServiceClient(servertest.Dial(t, addr))
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

// serveAndPublish runs serve with args for one publish, and stops it.
func serveAndPublish(t *testing.T, args ...string) {
	t.Run("serve", func(t *testing.T) {
		s := startServe(t, args...)
		if _, err := publish(testCtx(t), dialPlaintext(t, s.addr), "r", "x"); err != nil {
			t.Fatal(err)
		}
	})
}

// serve --cpuprofile writes a CPU profile of the whole run, which it
// completes as it shuts down.
func TestServeWritesACPUProfile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cpu.pprof")
	serveAndPublish(t, "--cpuprofile", file)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b { // a profile is gzipped protobuf
		t.Fatalf("the profile is %d bytes, not gzipped: % x", len(b), b[:min(len(b), 8)])
	}
}

// serve --trace writes an execution trace of the whole run, beside a CPU
// profile when both are asked for.
func TestServeWritesATrace(t *testing.T) {
	dir := t.TempDir()
	traceFile, cpuFile := filepath.Join(dir, "run.trace"), filepath.Join(dir, "cpu.pprof")
	serveAndPublish(t, "--trace", traceFile, "--cpuprofile", cpuFile)
	b, err := os.ReadFile(traceFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("go 1.")) || !bytes.Contains(b[:min(len(b), 16)], []byte(" trace")) {
		t.Fatalf("the trace is %d bytes, without a trace's header: %q", len(b), b[:min(len(b), 16)])
	}
	if info, err := os.Stat(cpuFile); err != nil || info.Size() == 0 {
		t.Fatalf("the CPU profile beside it: %v, %v", info, err)
	}
}

// serve --memprofile writes the allocations of the whole run as it shuts
// down.
func TestServeWritesAMemProfile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mem.pprof")
	serveAndPublish(t, "--memprofile", file)
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f) // a profile is gzipped protobuf
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("alloc_space")) {
		t.Fatalf("the profile's %d bytes name no alloc_space samples", len(b))
	}
}
