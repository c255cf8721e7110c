package statuspage_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/statuspage"
	"github.com/roomcast/roomcast/internal/testsupport/headless"
)

// browser starts the test's headless Chromium (see headless.Browser).
func browser(t *testing.T) context.Context {
	return headless.Browser(t, servertest.Context(t), 1280, 900)
}

// waitFor polls the page until the JavaScript expression cond is true.
func waitFor(t *testing.T, b context.Context, cond string) {
	t.Helper()
	if _, err := chromedp.Run(b, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("waiting for %s: %v", cond, err)
	}
}

// text returns the text of the element the CSS selector sel finds.
func text(t *testing.T, b context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(b, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// TestPageInBrowser opens the status page in headless Chromium and checks
// what it shows: the server's info, a room with its offset and rate, and
// the live tail of the room as messages are published.
func TestPageInBrowser(t *testing.T) {
	c, base := startPage(t, statuspage.WithTail(true))
	ctx := servertest.Context(t)
	for _, text := range []string{"one", "two", "three"} {
		publish(t, ctx, c, "chat.lobby", text)
	}
	publish(t, ctx, c, "news.eu", "bonjour")
	b := browser(t)

	if err := chromedp.Do(b, chromedp.Navigate(base+"/status")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, `document.querySelector('#rooms tr[data-room="chat.lobby"] td.offset')?.textContent === "3"`)
	engine, version := text(t, b, "#server-engine"), text(t, b, "#server-version")
	rate := text(t, b, `#rooms tr[data-room="chat.lobby"] td.rate`)
	rows, err := chromedp.Run(b, chromedp.Evaluate[string](`Array.from(document.querySelectorAll('#rooms tbody tr')).map(r => r.dataset.room).join(",")`))
	if err != nil {
		t.Fatal(err)
	}
	if engine != "memory" || version == "" || version == "–" || rate == "0.0" || rows != "chat.lobby,news.eu" {
		t.Errorf("page shows engine %q, version %q, chat.lobby's rate %q, rooms %q", engine, version, rate, rows)
	}

	// Tail the room by clicking it, then publish.
	if err := chromedp.Do(b, chromedp.Click(chromedp.CSS(`#rooms tr[data-room="chat.lobby"] td.name`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, `document.getElementById("tail-status").textContent.startsWith("Following chat.lobby")`)
	if status := text(t, b, "#tail-status"); !strings.Contains(status, "from offset 3") {
		t.Errorf("tail status %q, want it to say it follows from offset 3", status)
	}
	publish(t, ctx, c, "chat.lobby", "hello from the test")
	publish(t, ctx, c, "chat.lobby", `<b>not bold</b>`)
	waitFor(t, b, `document.querySelectorAll("#tail-messages li").length === 2`)
	first, second := text(t, b, "#tail-messages li:nth-child(1) .body"), text(t, b, "#tail-messages li:nth-child(2)")
	if first != "<b>not bold</b>" || !strings.Contains(second, "#4") || !strings.Contains(second, "hello from the test") {
		t.Errorf("tail shows %q then %q; want the newest first, as text, with offsets", first, second)
	}
	// The rooms table catches up with the new offset.
	waitFor(t, b, `document.querySelector('#rooms tr[data-room="chat.lobby"] td.offset')?.textContent === "5"`)

	png, err := chromedp.Run(b, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("ROOMCAST_SCREENSHOT_DIR") // set it to keep the screenshot and look at it
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "roomcast-status.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Errorf("screenshot is not a PNG (%d bytes)", len(png))
	}
	t.Logf("screenshot: %s", path)
}

// TestPageTailOff checks that the page says how to turn the tail on when it
// is off.
func TestPageTailOff(t *testing.T) {
	c, base := startPage(t)
	ctx := servertest.Context(t)
	publish(t, ctx, c, "chat.lobby", "secret")
	b := browser(t)
	if err := chromedp.Do(b, chromedp.Navigate(base+"/status")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, `document.querySelector('#rooms tr[data-room="chat.lobby"]') !== null`)
	if err := chromedp.Do(b, chromedp.Click(chromedp.CSS(`#rooms tr[data-room="chat.lobby"] td.name`))); err != nil {
		t.Fatal(err)
	}
	if status := text(t, b, "#tail-status"); !strings.Contains(status, "--status-page-tail") {
		t.Errorf("tail status %q, want it to name --status-page-tail", status)
	}
	if n, err := chromedp.Run(b, chromedp.Evaluate[int](`document.querySelectorAll("#tail-messages li").length`)); err != nil || n != 0 {
		t.Errorf("tail shows %d messages (%v), want none", n, err)
	}
}
