package web_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/roomcast/roomcast/internal/testsupport/headless"
)

// page is the example page open in a headless Chromium of the test.
type page struct {
	t   *testing.T
	ctx context.Context // the tab's
}

// browser starts the test's headless Chromium (see headless.Browser).
func browser(t *testing.T) context.Context {
	return headless.Browser(t, context.Background(), 1000, 800)
}

// openPage opens the page served at origin, with query, in a new tab of
// the browser b, closed when the test ends.
func openPage(t *testing.T, b context.Context, origin string, query url.Values) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b)
	t.Cleanup(cancel)
	p := &page{t: t, ctx: ctx}
	if err := chromedp.Do(ctx, chromedp.Navigate(origin+"/?"+query.Encode())); err != nil {
		t.Fatalf("opening the page: %v", err)
	}
	return p
}

// waitFor polls the page until the JavaScript expression cond is true.
func (p *page) waitFor(what, cond string) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Poll[bool](cond,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(waitLimit)))
	if err != nil {
		p.t.Fatalf("the page does not show %s within %v (%v); it shows status %q and:\n%s",
			what, waitLimit, err, p.status(), p.dump())
	}
}

// screenshot saves a PNG of the page as name in $ROOMCAST_SCREENSHOT_DIR,
// when it is set, for a person to look at.
func (p *page) screenshot(name string) {
	p.t.Helper()
	dir := os.Getenv("ROOMCAST_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", path)
}

// item is one <li> of the page's #messages: a message or a gap.
type item struct {
	Kind   string `json:"kind"` // "message" or "gap"
	Room   string `json:"room"`
	Epoch  string `json:"epoch"`
	Offset string `json:"offset"` // a message's
	Body   string `json:"body"`   // a message's
	First  string `json:"first"`  // a gap's
	Last   string `json:"last"`   // a gap's
	Text   string `json:"text"`
}

func (it item) String() string {
	if it.Kind == "gap" {
		return fmt.Sprintf("gap %s:%s-%s@%s", it.Room, it.First, it.Last, it.Epoch)
	}
	return fmt.Sprintf("%s#%s@%s %q", it.Room, it.Offset, it.Epoch, it.Body)
}

func (it item) offset(t *testing.T) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(it.Offset, 10, 64)
	if err != nil {
		t.Fatalf("%v: offset: %v", it, err)
	}
	return n
}

const itemsJS = `Array.from(document.querySelectorAll("#messages li")).map(li => ({
	kind: li.className, room: li.dataset.room ?? "", epoch: li.dataset.epoch ?? "",
	offset: li.dataset.offset ?? "", body: li.querySelector(".body")?.textContent ?? "",
	first: li.dataset.first ?? "", last: li.dataset.last ?? "", text: li.textContent,
}))`

// items returns what the page's list shows, top to bottom.
func (p *page) items() []item {
	p.t.Helper()
	its, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]item](itemsJS))
	if err != nil {
		p.t.Fatalf("reading the page's messages: %v", err)
	}
	return its
}

// waitMessages waits until the page shows n messages and returns its list.
func (p *page) waitMessages(n int) []item {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("%d messages", n), fmt.Sprintf(`document.querySelectorAll("#messages li.message").length >= %d`, n))
	return p.items()
}

// status returns the text of the page's status.
func (p *page) status() string {
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.getElementById("status")?.textContent ?? ""`))
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	return s
}

// dump is the page's list, for a failure's message.
func (p *page) dump() string {
	its, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]item](itemsJS))
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	s := ""
	for _, it := range its {
		s += "  " + it.String() + "\n"
	}
	return s
}
