package server

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// FuzzCommandAuthenticated runs arbitrary Subscribe commands on a session of
// an authenticated subject, refreshes included: a refresh token "t0" to "t3"
// stands for a real one (narrower grants, wider grants, another subject,
// expired), anything else is sent as it is. Nothing panics, every failure is
// a real code with a readable message, the session is only ever in rooms
// its current credential allows, and closing it leaves no room behind.
func FuzzCommandAuthenticated(f *testing.F) {
	secret := []byte("a secret of at least 32 bytes, for the fuzz target")
	v, err := auth.NewJWTVerifier(auth.WithHMACSecret(secret, ""), auth.WithIssuer("fuzz"), auth.WithAudience("roomcast"))
	if err != nil {
		f.Fatal(err)
	}
	authn, err := auth.NewAuthenticator(auth.WithJWT(v))
	if err != nil {
		f.Fatal(err)
	}
	mint := func(subject string, exp time.Time, subscribe, presence string) string {
		g := auth.Grants{}
		for into, s := range map[*[]auth.Pattern]string{&g.Subscribe: subscribe, &g.Presence: presence} {
			if s != "" {
				p, err := auth.ParsePatterns(strings.Split(s, ",")...)
				if err != nil {
					f.Fatal(err)
				}
				*into = p
			}
		}
		claims := auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "fuzz", Audience: jwt.ClaimStrings{"roomcast"}, Subject: subject, ExpiresAt: jwt.NewNumericDate(exp)}, Roomcast: &g}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	later := time.Now().Add(time.Hour)
	tokens := map[string]string{
		"t0": mint("svc", later, "a.>", ""),
		"t1": mint("svc", later, "a.>,b.>,c.>", "a.>,b.>"),
		"t2": mint("other", later, ">", ">"),
		"t3": mint("svc", time.Now().Add(-time.Hour), ">", ">"),
	}
	start := mint("svc", later, "a.>,b.>", "a.>")

	for _, req := range []*roomcastv1.SubscribeRequest{
		{Id: "1", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: "a.x"}}},
		{Id: "2", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: "b.y", Presence: true}}},
		{Id: "3", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: "a.z", PresenceEvents: true}}},
		{Id: "4", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: "c.w"}}},
		{Id: "5", Command: &roomcastv1.SubscribeRequest_Refresh{Refresh: &roomcastv1.RefreshCommand{Token: "t0"}}},
		{Id: "6", Command: &roomcastv1.SubscribeRequest_Refresh{Refresh: &roomcastv1.RefreshCommand{Token: "t1"}}},
		{Id: "7", Command: &roomcastv1.SubscribeRequest_Refresh{Refresh: &roomcastv1.RefreshCommand{Token: "t2"}}},
		{Id: "8", Command: &roomcastv1.SubscribeRequest_Refresh{Refresh: &roomcastv1.RefreshCommand{Token: "t3"}}},
		{Id: "9", Command: &roomcastv1.SubscribeRequest_Leave{Leave: &roomcastv1.LeaveCommand{Room: "a.x"}}},
	} {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, b, b)
	}
	// A narrowing refresh between joins, as the seeds in testdata/ have it.
	join, _ := proto.Marshal(&roomcastv1.SubscribeRequest{Id: "j", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: "b.y"}}})
	narrow, _ := proto.Marshal(&roomcastv1.SubscribeRequest{Id: "r", Command: &roomcastv1.SubscribeRequest_Refresh{Refresh: &roomcastv1.RefreshCommand{Token: "t0"}}})
	f.Add(join, narrow, join)
	srv, err := New(WithAuthenticator(authn), WithBrokerOptions(broker.WithHistory(0, 0)), WithMaxRoomsPerSession(3), WithCommandRate(0, 0), WithCredentialCommandRate(0, 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	f.Fuzz(func(t *testing.T, first, second, third []byte) {
		ctx := context.Background()
		id, err := authn.AuthenticateToken(start)
		if err != nil {
			t.Fatal(err)
		}
		ss := &session{srv: srv, id: "FUZZ", stream: contextOnly{ctx: ctx}, sub: srv.broker.NewSubscriber("FUZZ"), identity: id}
		defer srv.access.removeSession(srv.access.addSession(ctx, ss.sub, id, func(error) {}))
		for _, raw := range [][]byte{first, second, third} {
			req := new(roomcastv1.SubscribeRequest)
			if proto.Unmarshal(raw, req) != nil {
				continue
			}
			if r := req.GetRefresh(); r != nil {
				if tok, ok := tokens[r.GetToken()]; ok {
					r.Token = tok
				}
			}
			reply := &roomcastv1.CommandReply{Id: req.GetId()}
			if err := ss.execute(nil, req, reply); err != nil { // no send: the in-memory hub answers every join at once
				st, ok := status.FromError(err)
				if !ok || st.Code() == codes.OK || st.Code() == codes.Unknown || st.Code() == codes.Internal || !utf8.ValidString(st.Message()) || st.Message() == "" {
					t.Fatalf("command %v failed with %v", req, err)
				}
			} else if reply.GetResult() == nil {
				t.Fatalf("command %v succeeded with no result", req)
			}
			for _, m := range ss.sub.Memberships() {
				if !ss.identity.Allows(auth.Subscribe, m.Room) || ((m.Presence || m.Events) && !ss.identity.Allows(auth.Presence, m.Room)) {
					t.Fatalf("after %v: in room %s (presence %v, events %v), which %s's grants do not allow", req, m.Room, m.Presence, m.Events, ss.identity.Subject)
				}
			}
			if ss.sub.Rooms() > 3 {
				t.Fatalf("session in %d rooms, over its limit", ss.sub.Rooms())
			}
		}
		ss.sub.Close()
		if n := srv.broker.Stats().Rooms; n != 0 {
			t.Fatalf("%d rooms left after the session closed", n)
		}
	})
}
