package auth_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// stubBroker checks permissions as the real server will, and reports the
// caller's subject: in the "subject" header of Publish, and as the session id
// of Subscribe.
type stubBroker struct {
	roomcastv1.UnimplementedBrokerServiceServer
}

func (stubBroker) Publish(ctx context.Context, req *roomcastv1.PublishRequest) (*roomcastv1.PublishResponse, error) {
	if err := auth.Authorize(ctx, auth.Publish, req.GetRoom()); err != nil {
		return nil, err
	}
	id, _ := auth.FromContext(ctx)
	if err := grpc.SetHeader(ctx, metadata.Pairs("subject", id.Subject)); err != nil {
		return nil, err
	}
	return &roomcastv1.PublishResponse{Offset: 1}, nil
}

func (stubBroker) Subscribe(stream grpc.BidiStreamingServer[roomcastv1.SubscribeRequest, roomcastv1.SubscribeResponse]) error {
	id, ok := auth.FromContext(stream.Context())
	if !ok {
		return status.Error(codes.Internal, "no identity")
	}
	return stream.Send(&roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Session{Session: &roomcastv1.SessionEvent{SessionId: id.Subject}}})
}

// serve runs a gRPC server with the interceptors, the stub broker, health
// and reflection on a loopback port, and returns a connection to it.
func serve(t *testing.T, a *auth.Authenticator, opts ...auth.InterceptorOption) *grpc.ClientConn {
	t.Helper()
	in, err := auth.NewInterceptors(a, opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(in.UnaryServerInterceptor()), grpc.ChainStreamInterceptor(in.StreamServerInterceptor()))
	roomcastv1.RegisterBrokerServiceServer(srv, stubBroker{})
	healthpb.RegisterHealthServer(srv, health.NewServer())
	reflection.Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return conn
}

func testCtx(t *testing.T, authorization ...string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	for _, v := range authorization {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", v)
	}
	return ctx
}

func wantStatus(t *testing.T, err error, code codes.Code, mention string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), mention) {
		t.Fatalf("got %v; want %v mentioning %q", err, code, mention)
	}
}

func TestInterceptors(t *testing.T) {
	k := keys(t)
	secret, entry := newKey(t, "svc", `{"publish": ["svc.>"]}`)
	store, err := auth.NewAPIKeyStore(entry)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewAuthenticator(auth.WithJWT(verifier(t)), auth.WithAPIKeys(store))
	if err != nil {
		t.Fatal(err)
	}
	conn := serve(t, a)
	broker := roomcastv1.NewBrokerServiceClient(conn)
	good := "Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, goodClaims(t), nil)
	publish := &roomcastv1.PublishRequest{Room: "chat.lobby", Payload: &roomcastv1.PublishRequest_Text{Text: "hi"}}

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			headers []string
			mention string
		}{
			{"no token", nil, `missing credentials: send "authorization: Bearer <token>" metadata`},
			{"garbage", []string{"Bearer garbage"}, "malformed credentials: token is not a well-formed JWT"},
			{"not bearer", []string{"Basic dXNlcjpwYXNz"}, `malformed credentials: the authorization value must be "Bearer <token>"`},
			{"scheme only", []string{"Bearer"}, "must be \"Bearer <token>\""},
			{"empty value", []string{""}, "must be \"Bearer <token>\""},
			{"expired", []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, expired(t), nil)}, "credentials expired: token expired at"},
			{"bad signature", []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.otherRSA, goodClaims(t), nil)}, "invalid signature"},
			{"wrong api key", []string{"Bearer " + secret[:len(secret)-4] + "beef"}, "invalid API key"},
			{"two values", []string{good, good}, "2 authorization values"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := broker.Publish(testCtx(t, tc.headers...), publish)
				wantStatus(t, err, codes.Unauthenticated, tc.mention)
				stream, err := broker.Subscribe(testCtx(t, tc.headers...))
				if err != nil {
					t.Fatal(err)
				}
				_, err = stream.Recv()
				wantStatus(t, err, codes.Unauthenticated, tc.mention)
			})
		}
	})

	t.Run("identity in the handler", func(t *testing.T) {
		for _, tc := range []struct{ header, room, subject string }{
			{good, "chat.lobby", "alice"},
			{strings.Replace(good, "Bearer", "bearer", 1), "chat.lobby", "alice"},
			{"Bearer " + secret, "svc.orders", "svc"},
		} {
			var md metadata.MD
			if _, err := broker.Publish(testCtx(t, tc.header), &roomcastv1.PublishRequest{Room: tc.room}, grpc.Header(&md)); err != nil {
				t.Fatal(err)
			}
			if got := md.Get("subject"); len(got) != 1 || got[0] != tc.subject {
				t.Fatalf("subject header %q; want %q", got, tc.subject)
			}
			stream, err := broker.Subscribe(testCtx(t, tc.header))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil || resp.GetSession().GetSessionId() != tc.subject {
				t.Fatalf("Subscribe: %v, %v", resp, err)
			}
			if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
				t.Fatalf("end of stream: %v", err)
			}
		}
	})

	t.Run("permission denied", func(t *testing.T) {
		_, err := broker.Publish(testCtx(t, good), &roomcastv1.PublishRequest{Room: "chat.a.b"})
		wantStatus(t, err, codes.PermissionDenied, `"alice" has no publish permission for room "chat.a.b"`)
		_, err = broker.Publish(testCtx(t, "Bearer "+secret), publish)
		wantStatus(t, err, codes.PermissionDenied, `"svc" has no publish permission for room "chat.lobby"`)
	})

	t.Run("health and reflection are public", func(t *testing.T) {
		hc := healthpb.NewHealthClient(conn)
		resp, err := hc.Check(testCtx(t), &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check: %v, %v", resp, err)
		}
		// Public even with a bad token: public calls are not authenticated.
		if _, err := hc.Check(testCtx(t, "Bearer garbage"), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("Check with a bad token: %v", err)
		}
		watch, err := hc.Watch(testCtx(t), &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Watch: %v, %v", resp, err)
		}
		refl, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := refl.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		list, err := refl.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range list.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		if !strings.Contains(strings.Join(names, " "), "roomcast.v1.BrokerService") {
			t.Fatalf("reflection lists %v", names)
		}
		if err := refl.CloseSend(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestInterceptorsPublicOption(t *testing.T) {
	a, err := auth.NewAuthenticator(auth.WithJWT(verifier(t)))
	if err != nil {
		t.Fatal(err)
	}
	// Publish is public: it reaches the handler, which finds no identity.
	conn := serve(t, a, auth.WithPublic("/roomcast.v1.BrokerService/Publish"))
	_, err = roomcastv1.NewBrokerServiceClient(conn).Publish(testCtx(t), &roomcastv1.PublishRequest{Room: "chat.lobby"})
	wantStatus(t, err, codes.Unauthenticated, "the call carries no authenticated identity")
	// Health is no longer public.
	_, err = healthpb.NewHealthClient(conn).Check(testCtx(t), &healthpb.HealthCheckRequest{})
	wantStatus(t, err, codes.Unauthenticated, "missing credentials")

	in, err := auth.NewInterceptors(a)
	if err != nil {
		t.Fatal(err)
	}
	for m, want := range map[string]bool{
		"/grpc.health.v1.Health/Check": true, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": true,
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": true, "/roomcast.v1.BrokerService/Publish": false,
	} {
		if in.IsPublic(m) != want {
			t.Errorf("IsPublic(%q) = %v", m, !want)
		}
	}
	for _, bad := range []string{"", "a b", "/svc", "/svc/", "//m", "/svc/m/x", "svc/m"} {
		if _, err := auth.NewInterceptors(a, auth.WithPublic(bad)); err == nil {
			t.Errorf("WithPublic(%q) accepted", bad)
		}
	}
	if _, err := auth.NewInterceptors(nil); err == nil {
		t.Error("NewInterceptors(nil) accepted")
	}
}

func TestInterceptorsAnonymous(t *testing.T) {
	a, err := auth.NewAuthenticator(auth.WithAnonymous(auth.Grants{Publish: patterns(t, "public.*")}))
	if err != nil {
		t.Fatal(err)
	}
	broker := roomcastv1.NewBrokerServiceClient(serve(t, a, auth.WithPublic()))
	var md metadata.MD
	if _, err := broker.Publish(testCtx(t), &roomcastv1.PublishRequest{Room: "public.news"}, grpc.Header(&md)); err != nil {
		t.Fatal(err)
	}
	if got := md.Get("subject"); len(got) != 1 || got[0] != auth.AnonymousSubject {
		t.Fatalf("subject %q", got)
	}
	_, err = broker.Publish(testCtx(t), &roomcastv1.PublishRequest{Room: "private.news"})
	wantStatus(t, err, codes.PermissionDenied, "no publish permission")
	_, err = broker.Publish(testCtx(t, "Bearer x.y.z"), &roomcastv1.PublishRequest{Room: "public.news"})
	wantStatus(t, err, codes.Unauthenticated, "JWTs are not accepted")
}

func TestAuthorizeWithoutInterceptors(t *testing.T) {
	err := auth.Authorize(context.Background(), auth.Publish, "chat.lobby")
	wantStatus(t, err, codes.Unauthenticated, "no authenticated identity")
	ctx := auth.NewContext(context.Background(), &auth.Identity{Subject: "bob", Grants: auth.Grants{Presence: patterns(t, ">")}})
	if err := auth.Authorize(ctx, auth.Presence, "any.room"); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, auth.Authorize(ctx, auth.Subscribe, "any.room"), codes.PermissionDenied, `"bob" has no subscribe permission for room "any.room"`)
	if _, ok := auth.FromContext(auth.NewContext(context.Background(), nil)); ok {
		t.Fatal("FromContext found a nil identity")
	}
}
