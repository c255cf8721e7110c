// Package headless starts Debian's Chromium, headless, for tests that read
// what a page shows.
package headless

import (
	"context"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/roomcast/roomcast/internal/testsupport/testenv"
)

// ChromiumPath returns the Chromium on PATH, or skips t without one (fails
// it under CI, where .ci/run installs Debian's chromium package).
func ChromiumPath(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.SkipOrFail(t, "no chromium on PATH: install Debian's chromium package (apt-get install chromium) to run pages in a headless browser")
	return ""
}

// Browser starts a headless Chromium with a fresh profile, a window of
// width × height, and nothing that reaches beyond loopback (no background
// networking, updates or sync, which this machine's closed network would
// refuse), and returns its first tab's context, under parent. The browser
// is stopped, and waited for, in t's cleanup.
func Browser(t testing.TB, parent context.Context, width, height int) context.Context {
	t.Helper()
	path := ChromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(parent, opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser to exit
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}
