package redisengine

import (
	"errors"
	"strconv"
	"strings"

	"github.com/roomcast/roomcast/broker"
)

// A frame is what the publish script sends on a room's channel, built in
// Lua and parsed here:
//
//	m:<offset>:<epoch>:<time>:<n>:<exclude><body>
//
// offset and time (Unix nanoseconds) are decimal, epoch is base32 (no ':'),
// n is the length of exclude in bytes, so that the excluded session may hold
// any byte, and body, the Message without its offset, is the rest. Only the
// header is parsed; nothing is copied.
type frame struct {
	offset  uint64
	epoch   string
	time    int64
	exclude string
	body    string
}

var errFrame = errors.New("redisengine: malformed frame")

// parseFrame parses a message frame.
func parseFrame(s string) (frame, error) {
	var f frame
	rest, ok := strings.CutPrefix(s, "m:")
	if !ok {
		return f, errFrame
	}
	var fields [4]string
	for i := range fields {
		var found bool
		fields[i], rest, found = strings.Cut(rest, ":")
		if !found {
			return f, errFrame
		}
	}
	off, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil || off == 0 || fields[1] == "" {
		return f, errFrame
	}
	t, err := strconv.ParseInt(fields[2], 10, 64)
	if err != nil {
		return f, errFrame
	}
	n, err := strconv.ParseUint(fields[3], 10, 32)
	if err != nil || n > uint64(len(rest)) {
		return f, errFrame
	}
	f.offset, f.epoch, f.time = off, fields[1], t
	f.exclude, f.body = rest[:n], rest[n:]
	return f, nil
}

// parseEvent parses a presence frame, as the presence scripts send it:
//
//	p:<seq>:<offset>:<J|L>:<encoded Member>
func parseEvent(s string) (broker.Event, error) {
	var ev broker.Event
	rest, ok := strings.CutPrefix(s, "p:")
	if !ok {
		return ev, errFrame
	}
	var fields [3]string
	for i := range fields {
		var found bool
		fields[i], rest, found = strings.Cut(rest, ":")
		if !found {
			return ev, errFrame
		}
	}
	seq, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil || seq == 0 {
		return ev, errFrame
	}
	off, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return ev, errFrame
	}
	switch fields[2] {
	case "J":
	case "L":
		ev.Leave = true
	default:
		return ev, errFrame
	}
	ev.Seq, ev.Offset, ev.Member = seq, off, []byte(rest)
	return ev, nil
}
