package web_test

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/roomcast/roomcast/internal/testsupport/testenv"
)

// repoRoot is the directory holding go.mod.
var repoRoot = sync.OnceValues(func() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
})

// sources returns the repository's root once node and the npm packages of
// package-lock.json the page is built with are there; without them it skips
// the test (fails it under CI).
func sources(t *testing.T) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		testenv.SkipOrFail(t, "the web example is bundled with esbuild, which needs node on PATH: install Node 20 or later, then run `npm ci --no-audit --no-fund` at the repository's root")
	}
	for _, pkg := range []string{"esbuild", "typescript", "@connectrpc/connect-web", "@bufbuild/protobuf"} {
		if _, err := os.Stat(filepath.Join(root, "node_modules", pkg, "package.json")); err != nil {
			testenv.SkipOrFail(t, "the web example needs the npm packages of package-lock.json (node_modules has no %s): run `npm ci --no-audit --no-fund` at the repository's root", pkg)
		}
	}
	// go test's cache knows only the files the test itself opens: open the
	// ones esbuild and the page read, so that a change to any of them runs
	// the tests again.
	inputs := []string{"package-lock.json", "examples/web/index.html", "examples/web/tsconfig.json"}
	for _, dir := range []string{"examples/web", "gen/ts/roomcast/v1"} {
		srcs, err := filepath.Glob(filepath.Join(root, dir, "*.ts"))
		if err != nil || len(srcs) == 0 {
			t.Fatalf("no TypeScript in %s: %v", dir, err)
		}
		for _, src := range srcs {
			inputs = append(inputs, filepath.Join(dir, filepath.Base(src)))
		}
	}
	for _, in := range inputs {
		if _, err := os.ReadFile(filepath.Join(root, in)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// bundle builds the page's script with the esbuild pinned in
// package-lock.json into a directory of the test's, and returns it: the
// test checks the source as it is, not a build committed beside it.
func bundle(t *testing.T) string {
	t.Helper()
	root := sources(t)
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(root, "node_modules", ".bin", "esbuild"), "examples/web/main.ts", "--bundle", "--format=esm", "--target=es2022",
		"--log-level=warning", "--outdir="+out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("esbuild: %v\n%s", err, b)
	}
	return out
}

// servePage serves the page: index.html from examples/web and its bundle
// from dist, on a loopback port of its own, until the test ends. It
// returns the page's origin.
func servePage(t *testing.T, dist string) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(root, "examples", "web", "index.html"))
	})
	mux.Handle("GET /dist/", http.StripPrefix("/dist/", http.FileServer(http.Dir(dist))))
	return "http://" + serveHTTP(t, mux).addr
}

// TestTypecheck: the page's TypeScript, and gen/ts, compile with strict
// checks against the DOM's types (esbuild, which bundles it, does not
// check types).
func TestTypecheck(t *testing.T) {
	root := sources(t)
	cmd := exec.Command("node", "node_modules/typescript/bin/tsc", "--noEmit", "-p", "examples/web")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, out)
	}
}
