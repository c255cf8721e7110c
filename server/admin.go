package server

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// adminService serves AdminService for a Server. Every call is checked by
// allowAdmin first; its answers are snapshots, taken without holding a lock
// across anything but a copy.
type adminService struct {
	roomcastv1.UnimplementedAdminServiceServer
	s *Server
}

var _ roomcastv1.AdminServiceServer = (*adminService)(nil)

// Limits of the admin lists, documented in the proto.
const (
	defaultAdminLimit = 100
	maxAdminLimit     = 1000
	maxRoomSessions   = 1000 // sessions GetRoom lists
	maxReasonBytes    = 200
)

// errDisconnected is the status message of a stream an administrator ended.
const errDisconnected = "disconnected by an administrator"

// allowAdmin lets the call through when its credential has the admin grant,
// or, on a server without an authenticator, when it comes from this machine
// (see the proto's AdminService): an open server lets everyone publish and
// join, but administering it from elsewhere takes a credential. A refusal
// is logged by the failure log, as any PERMISSION_DENIED call is.
func (a *access) allowAdmin(ctx context.Context) error {
	if a.authn == nil {
		if fromLoopback(ctx) {
			return nil
		}
		return status.Error(codes.PermissionDenied, "this server has no credentials configured, so it answers AdminService only from loopback: call it from the server's machine, or give the server credentials and call with one whose grants have \"admin\": true")
	}
	if id := a.identity(ctx); !id.IsAdmin() {
		return status.Errorf(codes.PermissionDenied, "%s may not call AdminService: it needs a credential whose grants have \"admin\": true", id.Subject)
	}
	return nil
}

// fromLoopback reports whether the call's client is on this machine: a
// loopback IP address, or a Unix socket.
func fromLoopback(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return false
	}
	switch addr := p.Addr.(type) {
	case *net.TCPAddr:
		return addr.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}

// GetServerInfo implements AdminService.GetServerInfo.
func (as *adminService) GetServerInfo(ctx context.Context, _ *roomcastv1.GetServerInfoRequest) (*roomcastv1.GetServerInfoResponse, error) {
	if err := as.s.access.allowAdmin(ctx); err != nil {
		return nil, err
	}
	return as.s.ServerInfo(), nil
}

// ListRooms implements AdminService.ListRooms.
func (as *adminService) ListRooms(ctx context.Context, req *roomcastv1.ListRoomsRequest) (*roomcastv1.ListRoomsResponse, error) {
	if err := as.s.access.allowAdmin(ctx); err != nil {
		return nil, err
	}
	limit, err := limitOf(req.GetLimit(), defaultAdminLimit, maxAdminLimit)
	if err != nil {
		return nil, err
	}
	rooms, more := as.s.broker.Rooms(req.GetPageToken(), req.GetPrefix(), limit)
	resp := &roomcastv1.ListRoomsResponse{Rooms: make([]*roomcastv1.RoomInfo, len(rooms)), Total: uint64(as.s.broker.RoomCount())}
	for i, r := range rooms {
		resp.Rooms[i] = RoomInfoProto(r)
	}
	if more && len(rooms) > 0 {
		resp.NextPageToken = rooms[len(rooms)-1].Name
	}
	return resp, nil
}

// RoomInfoProto is r as AdminService gives it.
func RoomInfoProto(r broker.RoomInfo) *roomcastv1.RoomInfo {
	ri := &roomcastv1.RoomInfo{
		Name:             r.Name,
		Subscribers:      uint32(r.Subscribers),
		Offset:           r.Offset,
		Epoch:            r.Epoch,
		RetainedMessages: uint64(r.Retained),
		RetainedBytes:    uint64(r.Bytes),
		PublishRate:      r.Rate,
		PresenceMembers:  uint32(r.Members),
	}
	if !r.Newest.IsZero() {
		ri.LastPublishTime = timestamppb.New(r.Newest)
	}
	return ri
}

// GetRoom implements AdminService.GetRoom.
func (as *adminService) GetRoom(ctx context.Context, req *roomcastv1.GetRoomRequest) (*roomcastv1.GetRoomResponse, error) {
	if err := as.s.access.allowAdmin(ctx); err != nil {
		return nil, err
	}
	if err := broker.ValidateRoom(req.GetRoom()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	r, ok := as.s.broker.Room(req.GetRoom())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "the server holds no room %q: it has no subscriber and retains nothing", req.GetRoom())
	}
	in := as.s.access.sessionsWhere(func(ls *liveSession) bool {
		_, ok := ls.sub.SentIn(req.GetRoom())
		return ok
	})
	resp := &roomcastv1.GetRoomResponse{Room: RoomInfoProto(r), SessionsTotal: uint32(len(in))}
	for _, ls := range in[:min(len(in), maxRoomSessions)] {
		resp.Sessions = append(resp.Sessions, ls.info())
	}
	return resp, nil
}

// ListSessions implements AdminService.ListSessions.
func (as *adminService) ListSessions(ctx context.Context, req *roomcastv1.ListSessionsRequest) (*roomcastv1.ListSessionsResponse, error) {
	if err := as.s.access.allowAdmin(ctx); err != nil {
		return nil, err
	}
	limit, err := limitOf(req.GetLimit(), defaultAdminLimit, maxAdminLimit)
	if err != nil {
		return nil, err
	}
	after, subject := req.GetPageToken(), req.GetSubject()
	page := as.s.access.sessionsWhere(func(ls *liveSession) bool {
		return ls.id > after && (subject == "" || ls.subject() == subject)
	})
	resp := &roomcastv1.ListSessionsResponse{}
	if len(page) > limit {
		page = page[:limit]
		resp.NextPageToken = page[limit-1].id
	}
	for _, ls := range page {
		resp.Sessions = append(resp.Sessions, ls.info())
	}
	return resp, nil
}

// DisconnectSessions implements AdminService.DisconnectSessions.
func (as *adminService) DisconnectSessions(ctx context.Context, req *roomcastv1.DisconnectSessionsRequest) (*roomcastv1.DisconnectSessionsResponse, error) {
	if err := as.s.access.allowAdmin(ctx); err != nil {
		return nil, err
	}
	reason := req.GetReason()
	if len(reason) > maxReasonBytes || !utf8.ValidString(reason) {
		return nil, status.Errorf(codes.InvalidArgument, "reason must be valid UTF-8 of at most %d bytes", maxReasonBytes)
	}
	var ended []*liveSession
	switch t := req.GetTarget().(type) {
	case *roomcastv1.DisconnectSessionsRequest_SessionId:
		v, ok := as.s.access.sessions.Load(t.SessionId)
		if !ok {
			return nil, status.Errorf(codes.NotFound, "no open session %q", t.SessionId)
		}
		ended = []*liveSession{v.(*liveSession)}
	case *roomcastv1.DisconnectSessionsRequest_Subject:
		if t.Subject == "" {
			return nil, status.Error(codes.InvalidArgument, "subject is empty: name the subject whose sessions to end")
		}
		ended = as.s.access.sessionsWhere(func(ls *liveSession) bool { return ls.subject() == t.Subject })
	default:
		return nil, status.Error(codes.InvalidArgument, "set session_id or subject: the sessions to end")
	}
	msg := errDisconnected
	if reason != "" {
		msg += ": " + reason
	}
	msg += "; reconnect if your credential still lets you in"
	for _, ls := range ended {
		ls.end(status.Error(codes.Unavailable, msg))
	}
	by := as.s.access.identity(ctx)
	as.s.cfg.log.Info("administrator disconnected sessions", "by", by.Subject, "peer", peerAddr(ctx), "sessions", len(ended), "target", targetOf(req), "reason", reason)
	return &roomcastv1.DisconnectSessionsResponse{Disconnected: uint32(len(ended))}, nil
}

// targetOf says which sessions req names, for the log.
func targetOf(req *roomcastv1.DisconnectSessionsRequest) string {
	if id := req.GetSessionId(); id != "" {
		return "session " + id
	}
	return "subject " + req.GetSubject()
}

// CloseRoom implements AdminService.CloseRoom.
func (as *adminService) CloseRoom(ctx context.Context, req *roomcastv1.CloseRoomRequest) (*roomcastv1.CloseRoomResponse, error) {
	if err := as.s.access.allowAdmin(ctx); err != nil {
		return nil, err
	}
	if err := broker.ValidateRoom(req.GetRoom()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	subs, dropped, ok, err := as.s.broker.CloseRoom(req.GetRoom())
	switch {
	case errors.Is(err, broker.ErrRoomBusy):
		return nil, status.Error(codes.Unavailable, "the room's first join on this server is waiting on the engine; retry in a moment")
	case err != nil:
		return nil, brokerStatus(err)
	case !ok:
		return nil, status.Errorf(codes.NotFound, "the server holds no room %q: it has no subscriber and retains nothing", req.GetRoom())
	}
	as.s.cfg.log.Info("administrator closed a room", "by", as.s.access.identity(ctx).Subject, "peer", peerAddr(ctx), "room", req.GetRoom(), "subscribers", subs, "dropped_messages", dropped)
	return &roomcastv1.CloseRoomResponse{Sessions: uint32(subs), DroppedMessages: uint64(dropped)}, nil
}

// sessionsWhere returns the open sessions that keep returns true for, by
// session id.
func (a *access) sessionsWhere(keep func(*liveSession) bool) []*liveSession {
	var out []*liveSession
	a.sessions.Range(func(_, v any) bool {
		if ls := v.(*liveSession); keep(ls) {
			out = append(out, ls)
		}
		return true
	})
	slices.SortFunc(out, func(x, y *liveSession) int { return strings.Compare(x.id, y.id) })
	return out
}

// subject is the subject of the session's current credential.
func (ls *liveSession) subject() string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.identity.Subject
}

// info describes the session as AdminService gives it.
func (ls *liveSession) info() *roomcastv1.SessionInfo {
	ls.mu.Lock()
	id := ls.identity
	ls.mu.Unlock()
	si := &roomcastv1.SessionInfo{
		SessionId:         ls.id,
		Subject:           id.Subject,
		Credential:        string(id.Method),
		Peer:              ls.peer,
		StartTime:         timestamppb.New(ls.began),
		MessagesDelivered: ls.sub.Delivered(),
	}
	if !id.Expiry.IsZero() {
		si.ExpireTime = timestamppb.New(id.Expiry)
	}
	sent := ls.sub.Sent()
	rooms := make([]string, 0, len(sent))
	for r := range sent {
		rooms = append(rooms, r)
	}
	slices.Sort(rooms)
	for _, r := range rooms {
		si.Rooms = append(si.Rooms, &roomcastv1.SessionRoom{Room: r, Offset: sent[r]})
	}
	return si
}
