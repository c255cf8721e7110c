package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/roomname"
)

// The client commands say what went wrong as a person would: "cannot reach
// 127.0.0.1:50051: connection refused — is `roomcast serve` running?"
// rather than the gRPC status, with its nested descriptions and escaped
// quotes, that the client library returns.

// failed reports err, an error of the client library, on stderr as
// explain words it, and returns exitFail.
func (f *clientFlags) failed(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "roomcast %s: %s\n", cmd, f.explain(err))
	return exitFail
}

// explain words err, an error of the client library, for a person: what
// happened, and what to do about it when the CLI can tell.
func (f *clientFlags) explain(err error) string {
	st, ok := status.FromError(err)
	if !ok || st.Code() == codes.OK || st.Code() == codes.Unknown && st.Message() == err.Error() {
		return strings.TrimPrefix(err.Error(), "roomcast: ")
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unavailable:
		if reason, ok := f.unreachable(msg); ok {
			return fmt.Sprintf("cannot reach %s: %s", f.server, reason)
		}
		return "the server is unavailable: " + msg
	case codes.Unauthenticated:
		if f.token == "" {
			return "the server wants a credential (" + msg + "): give --token, or $ROOMCAST_TOKEN"
		}
		return "the server refused the credential: " + msg
	case codes.PermissionDenied:
		return "permission denied: " + msg
	case codes.ResourceExhausted:
		if d, ok := client.RetryAfter(err); ok {
			return fmt.Sprintf("%s; retry in %v", msg, d.Round(time.Millisecond))
		}
		return msg
	case codes.DeadlineExceeded:
		return fmt.Sprintf("%s did not answer in time", f.server)
	case codes.Unimplemented:
		return "the server does not know this call (is it an older roomcast?): " + msg
	case codes.InvalidArgument, codes.OutOfRange, codes.AlreadyExists, codes.NotFound, codes.FailedPrecondition:
		return msg
	}
	return fmt.Sprintf("%s (%s)", msg, st.Code())
}

// unreachable tells, from an UNAVAILABLE status message, why the server
// could not be reached, and what to do about it; false when the server was
// reached (and is, say, shutting down).
func (f *clientFlags) unreachable(msg string) (string, bool) {
	cause := innermost(msg)
	has := func(s string) bool { return strings.Contains(cause, s) }
	switch {
	case has("connection refused"):
		return "connection refused — is `roomcast serve` running?", true
	case has("produced zero addresses"), has("no such host"):
		return "no such host — check --server", true
	case has("certificate required"), has("bad certificate"), has("unknown certificate authority"),
		f.tlsCA != "" && (has("broken pipe") || has("connection reset")):
		if f.tlsCert == "" {
			return "the server ended the TLS handshake: it may require a client certificate (--tls-cert and --tls-key)", true
		}
		return "the server ended the TLS handshake: it may not accept the client certificate of --tls-cert " + f.tlsCert, true
	case has("first record does not look like a TLS handshake"):
		return "the server does not speak TLS — connect without --tls-ca, or serve with --tls-cert and --tls-key", true
	case has("error reading server preface"), has("http2: frame too large"):
		if f.tlsCA == "" {
			return "the connection closed before the server spoke — does the server require TLS? Give --tls-ca FILE", true
		}
		return "the connection closed before the server spoke: " + cause, true
	case has("certificate signed by unknown authority"):
		return "TLS: the server's certificate is not signed by a CA of --tls-ca " + f.tlsCA, true
	case has("certificate is valid for"):
		return "TLS: the " + cause[strings.Index(cause, "certificate is valid for"):] + " — give the name it has with --tls-server-name", true
	case has("i/o timeout"), has("network is unreachable"), has("no route to host"), has("connection reset"), has("authentication handshake failed"):
		return cause, true
	}
	return "", false
}

// innermost returns the innermost description of a gRPC status message
// that nests them ('connection error: desc = "transport: ... refused"'),
// unquoted, without the transport's prefixes.
func innermost(msg string) string {
	if i := strings.LastIndex(msg, `desc = "`); i >= 0 {
		msg = strings.TrimSuffix(msg[i+len(`desc = "`):], `"`)
		msg = strings.ReplaceAll(msg, `\"`, `"`)
	}
	for _, prefix := range []string{"transport: ", "Error while dialing: ", "authentication handshake failed: "} {
		msg = strings.TrimPrefix(msg, prefix)
	}
	return msg
}

// checkRooms checks the room names a command was given, so that a pattern
// or a bad name is a usage error that says what is wrong, before any call.
func checkRooms(rooms []string) error {
	for _, r := range rooms {
		err := roomname.Validate(r)
		switch {
		case err == nil:
		case roomname.CheckPattern(r) == nil:
			return fmt.Errorf("%q is a pattern: wildcards (* and >) are for grants (--subscribe of roomcast apikey new, serve's --anonymous-*, a JWT's grants), not rooms; name one room, such as chat.lobby", r)
		default:
			return err
		}
	}
	return nil
}

// checkRoomArgs is checkRooms for a command's arguments: it reports a
// problem on stderr and returns exitUsage, else exitOK.
func checkRoomArgs(stderr io.Writer, cmd string, rooms []string) int {
	if err := checkRooms(rooms); err != nil {
		return usageFailure(stderr, cmd, err.Error())
	}
	return exitOK
}

// usageFailure reports a usage error of a command's run function and returns
// exitUsage, after which run says where the usage is.
func usageFailure(stderr io.Writer, cmd, msg string) int {
	fmt.Fprintf(stderr, "roomcast %s: %s\n", cmd, msg)
	return exitUsage
}

// pastHead says that offset after is past room's newest message, head.
func pastHead(room string, after uint64, head client.Position) string {
	if head.Offset == 0 {
		return fmt.Sprintf("offset %d is past the newest offset of %s, which has no message yet", after, room)
	}
	return fmt.Sprintf("offset %d is past the newest offset of %s, %d (epoch %s)", after, room, head.Offset, head.Epoch)
}

// worthRetrying reports whether err, an UNAVAILABLE error, may go away by
// itself: nothing listens at the address yet, or the server is shutting
// down (a restart). A TLS mismatch, a missing client certificate or an
// unknown host would fail the same way every time.
func (f *clientFlags) worthRetrying(err error) bool {
	if !errors.Is(err, client.ErrUnavailable) {
		return false
	}
	reason, unreachable := f.unreachable(status.Convert(err).Message())
	return !unreachable || strings.HasPrefix(reason, "connection refused")
}
