package server

import (
	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Each credential's History and Presence answers are held to a rate in
// bytes, beside the read rate in calls: at the read rate's 100 calls a
// second, answers of up to maxReplyBytes each let one credential have the
// server write about 100 MiB a second, and a flood of the largest answers
// (issue #13 (f): a 1 MiB page of history and 500 members' presence, from
// 32 goroutines) cost the server a core's worth of copying and garbage,
// and another client's p99 latency four to nine times its own.
//
// The bucket is the publish byte rate's (see publishbytes.go), and charged
// as it is: a call is let through while its credential owes nothing, and
// the bytes of its answer are charged once the answer is built. So an
// answer of any size passes, a credential's average is held to the rate,
// and a call is refused by its credential alone, in the tap, before its
// request is read; its refusal counts toward its connection's pause and
// closing as an abusive one (a caller told to wait that calls again at
// once is a loop).

// allowReadBytes refuses a History or Presence call of id while its
// credential owes bytes of its read byte rate.
func (a *access) allowReadBytes(id *auth.Identity) error {
	if a.readBytes == nil {
		return nil
	}
	if wait := a.readBytes.owing(id); wait > 0 {
		return a.readBytesRefusals.refusal(wait)
	}
	return nil
}

// chargeRead charges a History or Presence answer of n bytes to id's
// credential.
func (a *access) chargeRead(id *auth.Identity, n int) {
	if a.readBytes != nil {
		a.readBytes.charge(id, n)
	}
}

// owingReads refuses a History or Presence call in the tap while its
// credential owes bytes of its read byte rate, before it takes a token of
// the read rate: the refusal costs neither reading its request nor one of
// the credential's calls.
func (s *Server) owingReads(method string, id *auth.Identity) error {
	if s.access.readBytes == nil || !isRead(method) {
		return nil
	}
	return s.access.allowReadBytes(id)
}

// isRead reports whether method is History or Presence, which share the
// read rates.
func isRead(method string) bool {
	return method == roomcastv1.BrokerService_History_FullMethodName || method == roomcastv1.BrokerService_Presence_FullMethodName
}
