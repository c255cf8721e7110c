package redisengine

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/roomcast/roomcast/broker"
)

// Publish implements broker.Engine: one EVALSHA of the publish script gives
// body the room's next offset, appends it to the room's stream and
// publishes its frame, atomically. It returns once Redis answered, so a
// returned offset is stored; an error wrapping broker.ErrUnavailable, within
// Config.Timeout, means the outcome is unknown. Safe for concurrent use;
// one caller's publishes are sequenced in the order it makes them.
func (e *Engine) Publish(ctx context.Context, room string, body []byte, exclude string) (uint64, string, error) {
	off, epoch, _, err := e.publish(ctx, room, body, exclude, "")
	return off, epoch, err
}

// PublishKeyed implements broker.KeyedPublisher: Publish, with key checked
// and remembered beside the room in the same script run, so a retry
// through any node of the cluster finds it (see keys.go). Safe for
// concurrent use.
func (e *Engine) PublishKeyed(ctx context.Context, room string, body []byte, exclude string, key broker.IdempotencyKey) (uint64, string, bool, error) {
	if key.Key == "" {
		return 0, "", false, errors.New("redisengine: PublishKeyed without a key")
	}
	return e.publish(ctx, room, body, exclude, keyField(key))
}

// publish runs the publish script; field is a key's field, or "".
func (e *Engine) publish(ctx context.Context, room string, body []byte, exclude, field string) (uint64, string, bool, error) {
	if e.isClosed() {
		return 0, "", false, broker.ErrClosed
	}
	s := e.shardOf(room)
	bctx, cancel := e.bound(ctx)
	defer cancel()
	args := []string{
		string(body), exclude, strconv.FormatInt(time.Now().UnixNano(), 10),
		strconv.Itoa(e.cfg.HistoryMessages), ms(e.cfg.HistoryTTL), ms(e.cfg.MetaTTL),
		newEpoch(), e.channel(room), field, ms(e.cfg.KeyWindow), strconv.Itoa(e.cfg.KeysPerRoom),
	}
	keys := []string{e.metaKey(room), e.streamKey(room), e.keysKey(room), e.keyTimesKey(room)}
	for attempt := 0; ; attempt++ {
		sc, err := s.current(bctx)
		if err != nil {
			return 0, "", false, e.unavailable(ctx, s, err)
		}
		c := s.client
		res := c.Do(bctx, c.B().Evalsha().Sha1(sc.publish).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
		if err := res.Error(); isNoScript(err) && attempt == 0 {
			// Not run: the process restarted, failed over, or flushed its
			// scripts. Bootstrap and try once more.
			if _, err := s.bootstrap(bctx, sc); err != nil {
				return 0, "", false, e.unavailable(ctx, s, err)
			}
			continue
		}
		reply, err := res.ToArray()
		if err != nil {
			return 0, "", false, e.unavailable(ctx, s, err)
		}
		if len(reply) != 2 && len(reply) != 3 {
			return 0, "", false, fmt.Errorf("redisengine: publish script answered %d values", len(reply))
		}
		off, err := reply[0].AsUint64()
		if err != nil {
			return 0, "", false, fmt.Errorf("redisengine: publish script's offset: %w", err)
		}
		epoch, err := reply[1].ToString()
		if err != nil {
			return 0, "", false, fmt.Errorf("redisengine: publish script's epoch: %w", err)
		}
		return off, epoch, len(reply) == 3, nil
	}
}

var epochEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newEpoch returns 64 random bits, base32: a candidate for a room that needs
// a new epoch, used only then.
func newEpoch() string {
	var b [8]byte
	rand.Read(b[:]) // documented to always fill b
	return epochEncoding.EncodeToString(b[:])
}

// ms is d in whole milliseconds, at least 1, as Redis's PEXPIRE takes it.
func ms(d time.Duration) string { return strconv.FormatInt(max(d.Milliseconds(), 1), 10) }
