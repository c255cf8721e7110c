package redisengine

import (
	"errors"
	"strconv"
	"strings"
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
