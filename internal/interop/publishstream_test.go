package interop_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/server"
)

// TestPublishStreamFromPythonAndNode: each language's publisher sends many
// messages on one PublishStream, pipelined, one of them too large; the
// answers come in order, the refused one with RESOURCE_EXHAUSTED and its
// id, the others with consecutive offsets, and the stream goes on after the
// error. A Go subscriber receives the accepted ones in the same order.
func TestPublishStreamFromPythonAndNode(t *testing.T) {
	t.Parallel()
	for _, l := range []lang{pythonLang, nodeLang} {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			l.require(t)
			addr := startServer(t, server.WithMaxMessageBytes(100))
			ctx := testCtx(t)
			const room = "interop.stream"
			goSub := subscribeGo(t, ctx, addr, room)
			const n, refused = 300, 150 // more messages than the server's window
			args := []string{"--server", addr, "--stream", room}
			for i := range n {
				msg := fmt.Sprint("message ", i)
				if i == refused {
					msg = strings.Repeat("x", 101)
				}
				args = append(args, msg)
			}
			cmd := command(t, nil, append(l.argv("publisher"), args...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Fatalf("%s publisher --stream: exit %d (%v), want 1 for the refused message; stderr:\n%s", l.name, code, err, &stderr)
			}
			lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
			if len(lines) != n {
				t.Fatalf("%s publisher printed %d lines for %d messages:\n%s", l.name, len(lines), n, out)
			}
			offset := uint64(0)
			for i, line := range lines {
				var answer struct {
					published
					ID    string `json:"id"`
					Error *struct {
						Code    string `json:"code"`
						Message string `json:"message"`
					} `json:"error"`
				}
				if err := json.Unmarshal([]byte(line), &answer); err != nil {
					t.Fatalf("%s publisher printed %q: %v", l.name, line, err)
				}
				if i == refused {
					if answer.Error == nil || answer.Error.Code != "RESOURCE_EXHAUSTED" || answer.ID != fmt.Sprint(refused) || !strings.Contains(answer.Error.Message, "limit is 100") {
						t.Fatalf("%s publisher's answer %d: %s, want RESOURCE_EXHAUSTED with id %d", l.name, i, line, refused)
					}
					continue
				}
				offset++
				if answer.Error != nil || answer.Offset != fmt.Sprint(offset) || answer.Epoch == "" {
					t.Fatalf("%s publisher's answer %d: %s, want offset %d", l.name, i, line, offset)
				}
			}
			for i := range n {
				if i == refused {
					continue
				}
				if m := goSub.next(); m.GetText() != fmt.Sprint("message ", i) {
					t.Fatalf("Go subscriber got %q, want message %d", m.GetText(), i)
				}
			}
		})
	}
}
