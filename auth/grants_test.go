package auth_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/auth"
)

func TestGrantsAllows(t *testing.T) {
	var g auth.Grants
	if err := json.Unmarshal([]byte(`{"publish": ["chat.*", "news.today"], "subscribe": ["chat.>"], "presence": ["chat.*"], "admin": true}`), &g); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		perm auth.Permission
		room string
		want bool
	}{
		{auth.Publish, "chat.lobby", true},
		{auth.Publish, "news.today", true},
		{auth.Publish, "news.tomorrow", false},
		{auth.Publish, "chat.a.b", false},
		{auth.Subscribe, "chat.a.b", true},
		{auth.Subscribe, "news.today", false},
		{auth.Presence, "chat.lobby", true},
		{auth.Presence, "chat.a.b", false},
		{auth.Permission(0), "chat.lobby", false},
		{auth.Permission(99), "chat.lobby", false},
	} {
		if got := g.Allows(tc.perm, tc.room); got != tc.want {
			t.Errorf("Allows(%v, %q) = %v", tc.perm, tc.room, got)
		}
	}
	if !g.Admin || g.IsZero() {
		t.Error("admin flag lost")
	}
	if (auth.Grants{}).Allows(auth.Publish, "chat.lobby") || !(auth.Grants{}).IsZero() {
		t.Error("zero Grants allows something")
	}
	var nilID *auth.Identity
	if nilID.Allows(auth.Publish, "chat.lobby") || nilID.IsAdmin() {
		t.Error("nil Identity allows something")
	}
}

func TestPermissionString(t *testing.T) {
	for p, want := range map[auth.Permission]string{auth.Publish: "publish", auth.Subscribe: "subscribe", auth.Presence: "presence", 7: "Permission(7)"} {
		if p.String() != want {
			t.Errorf("%d.String() = %q", p, p.String())
		}
	}
}

func TestGrantsJSON(t *testing.T) {
	in := `{"publish":["chat.*"],"subscribe":["chat.\u003e"],"admin":true}`
	var g auth.Grants
	if err := json.Unmarshal([]byte(in), &g); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(g)
	if err != nil || string(out) != in {
		t.Fatalf("round trip: %s, %v; want %s", out, err, in)
	}
	if err := json.Unmarshal([]byte(`null`), &g); err != nil || !g.Admin {
		t.Fatalf("null: %v, %+v", err, g)
	}
	for _, bad := range []struct{ in, want string }{
		{`{"publsh": ["chat.*"]}`, `unknown field "publsh"`},
		{`{"publish": ["chat.*x"]}`, `invalid room pattern "chat.*x"`},
		{`{"publish": "chat.*"}`, "cannot unmarshal"},
		{`{"admin": "yes"}`, "cannot unmarshal"},
	} {
		var g auth.Grants
		err := json.Unmarshal([]byte(bad.in), &g)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Unmarshal(%s) = %v; want an error mentioning %q", bad.in, err, bad.want)
		}
	}
	var g2 auth.Grants
	if err := json.Unmarshal([]byte(`{"subscribe": [">.a"]}`), &g2); !errors.Is(err, auth.ErrInvalidPattern) {
		t.Errorf("bad pattern error %v does not wrap ErrInvalidPattern", err)
	}
}
