package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/roomcast/roomcast/internal/redisproc"
)

// redisCallTimeout bounds each of the harness's own calls to Redis.
const redisCallTimeout = 5 * time.Second

// redisCluster is the Redis of a run's EngineRedis trials: servers the run
// started (and stops in close), or the ones Config.RedisAddr names. The
// run's keys and channels all start with prefix, which no other run uses.
type redisCluster struct {
	addrs   []string
	prefix  string
	version string
	procs   []*redisproc.Process // the run's own; nil with Config.RedisAddr
	dir     string               // their working directories' parent
	clients []rueidis.Client     // one per server, for INFO and clean-up
}

// startRedis returns the run's Redis: cfg.RedisShards redis-servers on
// free loopback ports, with nothing persisted, in a temporary directory;
// or, with cfg.RedisAddr, the servers it names, which must answer.
func startRedis(cfg Config) (_ *redisCluster, err error) {
	var id [6]byte
	rand.Read(id[:])
	c := &redisCluster{addrs: cfg.redisAddrs(), prefix: "rcbench." + hex.EncodeToString(id[:])}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if len(c.addrs) == 0 {
		if c.dir, err = os.MkdirTemp("", "roomcast-bench-redis-"); err != nil {
			return nil, err
		}
		for i := range cfg.RedisShards {
			dir := filepath.Join(c.dir, strconv.Itoa(i))
			if err := os.Mkdir(dir, 0o700); err != nil {
				return nil, err
			}
			p, err := redisproc.Start(dir, redisproc.Options{})
			if err != nil {
				return nil, fmt.Errorf("starting redis-server: %w", err)
			}
			c.procs = append(c.procs, p)
			c.addrs = append(c.addrs, p.Addr)
		}
	}
	for _, a := range c.addrs {
		cl, err := rueidis.NewClient(rueidis.ClientOption{
			InitAddress: []string{a}, ForceSingleClient: true, DisableCache: true,
			Dialer: net.Dialer{Timeout: redisCallTimeout},
		})
		if err != nil {
			return nil, fmt.Errorf("redis %s: %w", a, err)
		}
		c.clients = append(c.clients, cl)
	}
	info, err := c.info(0, "server")
	if err != nil {
		return nil, err
	}
	c.version = info["redis_version"]
	return c, nil
}

// info returns the fields of INFO section of server i.
func (c *redisCluster) info(i int, section string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), redisCallTimeout)
	defer cancel()
	cl := c.clients[i]
	s, err := cl.Do(ctx, cl.B().Info().Section(section).Build()).ToString()
	if err != nil {
		return nil, fmt.Errorf("redis %s: INFO %s: %w", c.addrs[i], section, err)
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}

// cpu returns each server's CPU time so far, system and user
// (used_cpu_sys + used_cpu_user of INFO cpu).
func (c *redisCluster) cpu() ([]time.Duration, error) {
	out := make([]time.Duration, len(c.addrs))
	for i := range c.addrs {
		info, err := c.info(i, "cpu")
		if err != nil {
			return nil, err
		}
		for _, k := range []string{"used_cpu_sys", "used_cpu_user"} {
			v, err := strconv.ParseFloat(info[k], 64)
			if err != nil {
				return nil, fmt.Errorf("redis %s: INFO cpu: %s is %q", c.addrs[i], k, info[k])
			}
			out[i] += time.Duration(v * 1e9)
		}
	}
	return out, nil
}

// close stops the servers the run started, or, on servers it was given,
// deletes the run's keys, and closes the clients.
func (c *redisCluster) close() error {
	var errs []error
	if len(c.procs) == 0 {
		for i := range c.clients {
			errs = append(errs, c.deleteKeys(i))
		}
	}
	for _, cl := range c.clients {
		cl.Close()
	}
	for _, p := range c.procs {
		p.Stop()
	}
	if c.dir != "" {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	return errors.Join(errs...)
}

// deleteKeys unlinks every key of the run's prefix on server i.
func (c *redisCluster) deleteKeys(i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*redisCallTimeout)
	defer cancel()
	cl := c.clients[i]
	var cursor uint64
	for {
		e, err := cl.Do(ctx, cl.B().Scan().Cursor(cursor).Match(c.prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			return fmt.Errorf("redis %s: deleting the run's keys: %w", c.addrs[i], err)
		}
		if len(e.Elements) > 0 {
			if err := cl.Do(ctx, cl.B().Unlink().Key(e.Elements...).Build()).Error(); err != nil {
				return fmt.Errorf("redis %s: deleting the run's keys: %w", c.addrs[i], err)
			}
		}
		if cursor = e.Cursor; cursor == 0 {
			return nil
		}
	}
}
