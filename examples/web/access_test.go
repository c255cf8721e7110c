package web_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/grpc/metadata"

	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// TestTokenAndOrigin: on a server that requires tokens, the page with
// ?token= watches and publishes, and without one it stops, saying it is
// unauthenticated rather than retrying; a page whose origin the server
// does not allow gets no answer its script may read, and keeps retrying.
func TestTokenAndOrigin(t *testing.T) {
	dist := bundle(t)
	b := browser(t)
	origin := servePage(t, dist)
	n := startNode(t, server.WithAuthenticator(testjwt.Authenticator(t)))
	web := n.serveWeb("127.0.0.1:0", origin)
	tok := testjwt.Token(t, "web", time.Now().Add(time.Hour), testjwt.Grants(t, ">", ">", ""))
	ctx := metadata.AppendToOutgoingContext(testCtx(t), "authorization", "Bearer "+tok)
	const room = "web.token"

	t.Run("with a token", func(t *testing.T) {
		p := openPage(t, b, origin, url.Values{"server": {web}, "room": {room}, "token": {tok}})
		p.waitFor("that it is connected", `document.getElementById("status").dataset.state === "connected"`)
		n.publish(t, ctx, room, "for token holders")
		if its := p.waitMessages(1); its[0].Body != "for token holders" {
			t.Errorf("the page shows %v", its[0])
		}
		err := chromedp.Do(p.ctx,
			chromedp.SendKeys(chromedp.ID("publish-text"), "from the page"),
			chromedp.Click(chromedp.ID("publish-button")))
		if err != nil {
			t.Fatal(err)
		}
		p.waitFor("that the publish went through", `document.getElementById("publish-result").dataset.state === "ok"`)
	})

	t.Run("without a token", func(t *testing.T) {
		p := openPage(t, b, origin, url.Values{"server": {web}, "room": {room}})
		p.waitFor("that it stopped", `document.getElementById("status").dataset.state === "failed"`)
		s := p.status()
		t.Logf("status: %s", s)
		if !strings.Contains(s, "unauthenticated") {
			t.Errorf("status %q, want it to say unauthenticated", s)
		}
	})

	t.Run("from an origin not allowed", func(t *testing.T) {
		elsewhere := startNode(t)
		web := elsewhere.serveWeb("127.0.0.1:0", "http://127.0.0.1:1")
		p := openPage(t, b, origin, url.Values{"server": {web}, "room": {room}})
		p.waitFor("that it is reconnecting", `document.getElementById("status").dataset.state === "reconnecting"`)
		p.waitFor("that it is still reconnecting, twice", `document.getElementById("status").dataset.retries >= 2`)
		t.Logf("status: %s", p.status())
		if its := p.items(); len(its) != 0 {
			t.Errorf("the page shows %v", its)
		}
	})
}
