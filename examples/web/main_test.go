// Package web_test drives the example page of examples/web in headless
// Chromium against real roomcast servers: it bundles main.ts with the
// esbuild of package-lock.json, serves the page from one loopback origin and
// the server's web handler from another (so the page's calls are
// cross-origin and need CORS), and reads what the page shows through the
// DevTools protocol (chromedp).
//
// It needs Node with `npm ci` run at the repository's root, Debian's
// chromium, and for the restart that keeps history, redis-server. Without
// them the tests skip, saying what is missing; with CI set they fail
// instead.
package web_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
