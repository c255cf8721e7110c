package statuspage_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/statuspage"
)

// startPage runs a roomcast server and its status page, and returns a
// client of the server and the page's base URL.
func startPage(t *testing.T, opts ...statuspage.Option) (roomcastv1.BrokerServiceClient, string) {
	t.Helper()
	srv, addr := servertest.Start(t)
	page := statuspage.New(srv, opts...)
	web := httptest.NewUnstartedServer(page)
	web.Config.RegisterOnShutdown(page.Close)
	web.Start()
	t.Cleanup(func() {
		page.Close()
		web.Close()
	})
	return roomcastv1.NewBrokerServiceClient(servertest.Dial(t, addr)), web.URL
}

func publish(t *testing.T, ctx context.Context, c roomcastv1.BrokerServiceClient, room, text string) {
	t.Helper()
	if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: text}}); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return resp, b.String()
}

// TestEndpoints checks the page's JSON endpoints and that the tail is
// refused unless it was turned on.
func TestEndpoints(t *testing.T) {
	c, base := startPage(t)
	ctx := servertest.Context(t)
	publish(t, ctx, c, "chat.lobby", "hi")
	publish(t, ctx, c, "news", "hi")

	resp, body := get(t, base+"/status/api/rooms?prefix=chat.")
	var rooms struct {
		Rooms []struct {
			Name   string `json:"name"`
			Offset string `json:"offset"`
		} `json:"rooms"`
		Total string `json:"total"`
	}
	if err := json.Unmarshal([]byte(body), &rooms); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("rooms: %s %s (%v)", resp.Status, body, err)
	}
	if len(rooms.Rooms) != 1 || rooms.Rooms[0].Name != "chat.lobby" || rooms.Rooms[0].Offset != "1" || rooms.Total != "2" {
		t.Errorf("rooms with prefix chat.: %s", body)
	}

	resp, body = get(t, base+"/status/api/info")
	var info struct {
		Server struct {
			Engine   string `json:"engine"`
			Counters struct {
				Published string `json:"published"`
			} `json:"counters"`
		} `json:"server"`
		Tail bool `json:"tail"`
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("info: %s %s (%v)", resp.Status, body, err)
	}
	if info.Server.Engine != "memory" || info.Server.Counters.Published != "2" || info.Tail {
		t.Errorf("info: %s", body)
	}

	resp, body = get(t, base+"/status/api/tail?room=chat.lobby")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "--status-page-tail") {
		t.Errorf("tail while off: %s %s, want 403 naming --status-page-tail", resp.Status, body)
	}
	resp, body = get(t, base+"/status")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "status/static/app.js") {
		t.Errorf("page: %s %s", resp.Status, body)
	}
	if resp, _ := get(t, base+"/status/static/app.js"); resp.StatusCode != http.StatusOK {
		t.Errorf("app.js: %s", resp.Status)
	}
}

// TestTailStream reads the tail's events as a browser's EventSource would:
// the join, then each message published after it.
func TestTailStream(t *testing.T) {
	c, base := startPage(t, statuspage.WithTail(true))
	ctx := servertest.Context(t)
	publish(t, ctx, c, "chat.lobby", "before")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/status/api/tail?room=chat.lobby", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("tail: %s, %s", resp.Status, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	next := func() (kind, data string) {
		t.Helper()
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				kind = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "" && kind != "":
				return kind, data
			}
		}
		t.Fatalf("tail ended: %v", sc.Err())
		return "", ""
	}
	if kind, data := next(); kind != "joined" || !strings.Contains(data, `"offset":"1"`) {
		t.Fatalf("first event %s %s, want joined at offset 1", kind, data)
	}
	publish(t, ctx, c, "chat.lobby", "after")
	if kind, data := next(); kind != "message" || !strings.Contains(data, `"text":"after"`) || !strings.Contains(data, `"offset":"2"`) {
		t.Fatalf("event %s %s, want the message published after the join", kind, data)
	}
}
