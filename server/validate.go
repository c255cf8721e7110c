package server

import (
	"fmt"
	"unicode/utf8"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Input limits that are part of the API, documented in the proto.
const (
	maxHeaders        = 64
	maxHeaderKeyLen   = 64
	maxContentTypeLen = 256
	maxSessionIDLen   = 64
	maxCommandIDLen   = 128
	maxInfoEntries    = 16
	maxInfoBytes      = 1 << 10
)

// messageSize is what a published message counts against the size limit.
func messageSize(req *roomcastv1.PublishRequest) int {
	n := len(req.GetData()) + len(req.GetText()) + len(req.GetContentType())
	for k, v := range req.GetHeaders() {
		n += len(k) + len(v)
	}
	return n
}

// validatePublish checks everything but the size, which has its own code.
func validatePublish(req *roomcastv1.PublishRequest) error {
	if err := broker.ValidateRoom(req.GetRoom()); err != nil {
		return err
	}
	if len(req.GetContentType()) > maxContentTypeLen {
		return fmt.Errorf("content type is %d bytes long; the limit is %d", len(req.GetContentType()), maxContentTypeLen)
	}
	if len(req.GetHeaders()) > maxHeaders {
		return fmt.Errorf("%d headers; the limit is %d", len(req.GetHeaders()), maxHeaders)
	}
	for k := range req.GetHeaders() {
		if err := validateHeaderKey(k); err != nil {
			return err
		}
	}
	if err := validateSessionID("session_id", req.GetSessionId()); err != nil {
		return err
	}
	if err := validateSessionID("exclude_session", req.GetExcludeSession()); err != nil {
		return err
	}
	if k := req.GetIdempotencyKey(); len(k) > broker.MaxIdempotencyKeyBytes || !utf8.ValidString(k) {
		return fmt.Errorf("idempotency_key must be valid UTF-8 of at most %d bytes", broker.MaxIdempotencyKeyBytes)
	}
	return nil
}

func validateHeaderKey(k string) error {
	if k == "" || len(k) > maxHeaderKeyLen {
		return fmt.Errorf("header key %q must be 1 to %d bytes long", clip(k), maxHeaderKeyLen)
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("header key %q has a character that is not allowed at byte %d (allowed: A-Z a-z 0-9 - _ .)", clip(k), i)
		}
	}
	return nil
}

// validateSessionID accepts "" or something shaped like an id the server
// hands out; a well-formed id that names no session is not an error.
func validateSessionID(field, id string) error {
	if len(id) > maxSessionIDLen {
		return fmt.Errorf("%s is %d bytes long; the limit is %d", field, len(id), maxSessionIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%s %q has a character that is not allowed at byte %d (allowed: A-Z a-z 0-9 - _)", field, clip(id), i)
		}
	}
	return nil
}

// validateInfo checks a join's presence info: header-like keys, and small.
func validateInfo(info map[string]string) error {
	if len(info) > maxInfoEntries {
		return fmt.Errorf("presence info has %d entries; the limit is %d", len(info), maxInfoEntries)
	}
	n := 0
	for k, v := range info {
		if err := validateHeaderKey(k); err != nil {
			return fmt.Errorf("presence info: %w", err)
		}
		n += len(k) + len(v)
	}
	if n > maxInfoBytes {
		return fmt.Errorf("presence info is %d bytes; the limit is %d", n, maxInfoBytes)
	}
	return nil
}

func validateCommandID(id string) error {
	if len(id) > maxCommandIDLen || !utf8.ValidString(id) {
		return fmt.Errorf("command id must be valid UTF-8 of at most %d bytes", maxCommandIDLen)
	}
	return nil
}

// clip shortens a client's string for an error message; %q then escapes
// whatever it holds, so the message stays valid UTF-8 as gRPC requires.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
