package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/internal/keyfile"
	"github.com/roomcast/roomcast/internal/loopback"
)

// engineFlags choose where rooms are sequenced and stored: in this process
// (memory, the default), or in Redis, shared by every node that names the
// same servers and prefix.
type engineFlags struct {
	engine            string
	redisAddrs        string
	redisPrefix       string
	redisTimeout      time.Duration
	redisUser         string
	redisPasswordFile string
}

func (f *engineFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.engine, "engine", "memory",
		"sequence and keep rooms in `ENGINE`: memory (this process only) or redis (shared by every node on the same --redis-addr)")
	fs.StringVar(&f.redisAddrs, "redis-addr", "",
		"with --engine redis, the Redis servers as `HOST:PORT[,HOST:PORT...]`, one per shard: rooms are spread over them by name, in this order")
	fs.StringVar(&f.redisPrefix, "redis-prefix", redisengine.DefaultPrefix,
		"start every Redis key and channel with `PREFIX`, so that several roomcast clusters can share a Redis")
	fs.DurationVar(&f.redisTimeout, "redis-timeout", redisengine.DefaultTimeout,
		"give up a Redis call after `DURATION`: a publish then fails with UNAVAILABLE, and may or may not have been stored")
	fs.StringVar(&f.redisUser, "redis-user", "", "authenticate to Redis as `USER` (ACL); with --redis-password-file")
	fs.StringVar(&f.redisPasswordFile, "redis-password-file", "",
		"authenticate to Redis with the password in `FILE` (which others may not write)")
}

// validate checks the flags against each other; insecure is
// --insecure-plaintext, which Redis, spoken in plaintext, needs beyond
// loopback as the gRPC listener does.
func (f *engineFlags) validate(insecure bool) error {
	switch f.engine {
	case "memory":
		if f.redisAddrs != "" {
			return errors.New("--redis-addr needs --engine redis")
		}
		return nil
	case "redis":
	default:
		return fmt.Errorf("--engine must be memory or redis, got %q", f.engine)
	}
	if f.redisAddrs == "" {
		return errors.New("--engine redis needs --redis-addr HOST:PORT")
	}
	for _, addr := range f.addrs() {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("--redis-addr %q: %v", addr, err)
		}
		if !insecure && !loopback.Host(host) {
			return fmt.Errorf("--redis-addr %s: Redis is spoken in plaintext, and %s is not a loopback address; on a network you trust add --insecure-plaintext", addr, host)
		}
	}
	if f.redisTimeout <= 0 {
		return fmt.Errorf("--redis-timeout must be positive, got %v", f.redisTimeout)
	}
	return nil
}

func (f *engineFlags) addrs() []string {
	var out []string
	for _, a := range strings.Split(f.redisAddrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// brokerOptions is the broker option that puts rooms in the engine, if one
// is chosen, and words for the start-up log line.
func (f *engineFlags) brokerOptions(ctx context.Context) ([]broker.Option, []any, error) {
	if f.engine != "redis" {
		return nil, []any{"engine", "memory"}, nil
	}
	cfg := redisengine.Config{Addrs: f.addrs(), Prefix: f.redisPrefix, Timeout: f.redisTimeout, Username: f.redisUser}
	if f.redisPasswordFile != "" {
		pw, err := keyfile.Read(f.redisPasswordFile)
		if err != nil {
			return nil, nil, fmt.Errorf("--redis-password-file: %w", err)
		}
		cfg.Password = strings.TrimSpace(string(pw))
	}
	return []broker.Option{broker.WithEngine(redisengine.Factory(ctx, cfg))},
		[]any{"engine", "redis", "redis_addr", strings.Join(cfg.Addrs, ","), "redis_prefix", cfg.Prefix}, nil
}
