package interop_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestNodeExamplesTypecheck: the TypeScript of examples/node and gen/ts
// compiles with strict checks (tsx, which runs it, does not check types).
func TestNodeExamplesTypecheck(t *testing.T) {
	t.Parallel()
	requireNode(t)
	cmd := command(t, nil, "node", "node_modules/typescript/bin/tsc", "--noEmit", "-p", "examples/node")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, out)
	}
}

// TestExampleReadmes runs the commands of examples/python/README.md and
// examples/node/README.md as written, with $ROOMCAST_SERVER pointing them at
// a test server, and checks that they print what the README shows, but for
// epochs and times.
func TestExampleReadmes(t *testing.T) {
	t.Parallel()
	for _, l := range []lang{pythonLang, nodeLang} {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			l.require(t)
			testExampleReadme(t, "examples/"+l.name+"/README.md")
		})
	}
}

func testExampleReadme(t *testing.T, path string) {
	readme, err := os.ReadFile(filepath.Join(root(t), path))
	if err != nil {
		t.Fatal(err)
	}
	blocks := fencedBlocks(string(readme))
	find := func(lang, needle string) string {
		t.Helper()
		for _, b := range blocks {
			if b.lang == lang && strings.Contains(b.text, needle) {
				return b.text
			}
		}
		t.Fatalf("%s has no %s block with %q", path, lang, needle)
		return ""
	}
	subscribeCmd := strings.TrimSpace(find("sh", "subscriber."))
	publishCmds := find("sh", "publisher.")
	wantPublished := strings.SplitN(strings.TrimSpace(find("json", `{"offset"`)), "\n", 2)[0]
	wantEvents := strings.Split(strings.TrimSpace(find("json", `"event":"joined"`)), "\n")
	if strings.Contains(subscribeCmd, "\n") {
		t.Fatalf("%s: the subscribe block has more than one line:\n%s", path, subscribeCmd)
	}

	addr := startServer(t)
	ctx := testCtx(t)
	env := []string{"ROOMCAST_SERVER=" + addr}
	sub := startProc(t, path+"'s subscriber", env, "sh", "-c", "exec "+subscribeCmd)
	var got []string
	ev := sub.expect(ctx, "joined")
	got = append(got, ev.line)

	cmd := command(t, env, "sh", "-ec", publishCmds)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: the publish commands: %v; stderr:\n%s", path, err, stderr.String())
	}
	if first := strings.SplitN(string(out), "\n", 2)[0]; !sameJSON(t, first, wantPublished) {
		t.Errorf("%s: the publisher printed %s, the README shows %s", path, first, wantPublished)
	}
	for _, ev := range sub.messages(ctx, len(wantEvents)-1) {
		got = append(got, ev.line)
	}
	for i := range wantEvents {
		if !sameJSON(t, got[i], wantEvents[i]) {
			t.Errorf("%s: the subscriber printed\n%s\nthe README shows\n%s", path, got[i], wantEvents[i])
		}
	}
}

type fencedBlock struct{ lang, text string }

// fencedBlocks returns the fenced code blocks of a Markdown text.
func fencedBlocks(md string) []fencedBlock {
	var blocks []fencedBlock
	var cur *fencedBlock
	for _, line := range strings.Split(md, "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &fencedBlock{lang: strings.TrimPrefix(line, "```")}
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	return blocks
}

// sameJSON reports whether two JSON lines are equal but for epochs and
// publish times, which differ from run to run.
func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb map[string]any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatalf("%q: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	for _, v := range []map[string]any{va, vb} {
		delete(v, "epoch")
		if m, ok := v["message"].(map[string]any); ok {
			delete(m, "publishTime")
		}
	}
	return reflect.DeepEqual(va, vb)
}
