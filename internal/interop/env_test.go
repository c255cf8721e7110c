package interop_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testenv"
	"github.com/roomcast/roomcast/server"
)

// python is the interpreter the examples are documented with: Debian's, which
// sees Debian's python3-grpcio and python3-protobuf. A python3 earlier on
// PATH (pyenv, a virtualenv) may not.
const python = "/usr/bin/python3"

// waitLimit bounds every wait of a test.
const waitLimit = 60 * time.Second

// repoRoot is the directory holding go.mod.
var repoRoot = sync.OnceValues(func() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, statInputs(dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
})

// statInputs looks at every file the programs the tests run read, so that
// go test's cache, which knows only the files the test itself looks at,
// runs the tests again when one of them changes.
func statInputs(root string) error {
	for _, dir := range []string{"examples", "gen/python", "gen/ts"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Name() == "node_modules" || d.Name() == "__pycache__" {
				return filepath.SkipDir
			}
			_, err = os.Stat(path)
			return err
		})
		if err != nil {
			return err
		}
	}
	_, err := os.Stat(filepath.Join(root, "package-lock.json"))
	return err
}

func root(t *testing.T) string {
	t.Helper()
	dir, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// pythonMissing says what the Python examples lack, or "" if nothing.
var pythonMissing = sync.OnceValue(func() string {
	if _, err := os.Stat(python); err != nil {
		return "the Python examples need " + python + ": apt-get install python3 python3-grpcio python3-protobuf"
	}
	out, err := exec.Command(python, "-c", "import grpc, google.protobuf").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("the Python examples need grpc and google.protobuf, which %s cannot import (%v: %s): apt-get install python3-grpcio python3-protobuf",
			python, err, bytes.TrimSpace(out))
	}
	return ""
})

func requirePython(t *testing.T) {
	t.Helper()
	if msg := pythonMissing(); msg != "" {
		testenv.SkipOrFail(t, "%s", msg)
	}
}

func requireNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		testenv.SkipOrFail(t, "the Node examples need node on PATH: install Node 20 or later, then run `npm ci --no-audit --no-fund` at the repository's root")
	}
	for _, pkg := range []string{"tsx", "typescript", "@connectrpc/connect-node", "@bufbuild/protobuf"} {
		if _, err := os.Stat(filepath.Join(root(t), "node_modules", pkg, "package.json")); err != nil {
			testenv.SkipOrFail(t, "the Node examples need the npm packages of package-lock.json (node_modules has no %s): run `npm ci --no-audit --no-fund` at the repository's root, then go test ./internal/interop", pkg)
		}
	}
}

// lang is a client language with example programs.
type lang struct {
	name    string
	require func(*testing.T)
	// argv runs the example program prog ("publisher" or "subscriber").
	argv func(prog string) []string
}

var (
	pythonLang = lang{"python", requirePython, func(prog string) []string {
		return []string{python, "examples/python/" + prog + ".py"}
	}}
	// node --import tsx rather than the tsx command: the program is then the
	// process itself, so signals reach it directly.
	nodeLang = lang{"node", requireNode, func(prog string) []string {
		return []string{"node", "--import", "tsx", "examples/node/" + prog + ".ts"}
	}}
)

// startServer runs a quiet Go server on a loopback port for the test's
// duration.
func startServer(t *testing.T, opts ...server.Option) string {
	t.Helper()
	opts = append([]server.Option{server.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	_, addr := servertest.Start(t, opts...)
	return addr
}

func dial(t *testing.T, addr string) roomcastv1.BrokerServiceClient {
	t.Helper()
	return roomcastv1.NewBrokerServiceClient(servertest.Dial(t, addr))
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}
