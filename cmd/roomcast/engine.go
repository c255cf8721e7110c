package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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

	redisTLS           bool
	redisTLSCA         string
	redisTLSCert       string
	redisTLSKey        string
	redisTLSServerName string
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
	fs.BoolVar(&f.redisTLS, "redis-tls", false,
		"speak TLS (1.2 or later) to every --redis-addr, verifying its certificate against the system's CAs or --redis-tls-ca")
	fs.StringVar(&f.redisTLSCA, "redis-tls-ca", "",
		"with --redis-tls, trust the CAs in the PEM `FILE` for Redis's certificate instead of the system's")
	fs.StringVar(&f.redisTLSCert, "redis-tls-cert", "",
		"with --redis-tls, present the client certificate in the PEM `FILE` to Redis (for tls-auth-clients yes); with --redis-tls-key")
	fs.StringVar(&f.redisTLSKey, "redis-tls-key", "",
		"the PEM private key of --redis-tls-cert, in `FILE` (which others may not write)")
	fs.StringVar(&f.redisTLSServerName, "redis-tls-server-name", "",
		"with --redis-tls, expect Redis's certificate to name `NAME` (default: the host of each --redis-addr)")
}

// validate checks the flags against each other; insecure is
// --insecure-plaintext, which Redis, spoken in plaintext (without
// --redis-tls), needs beyond loopback as the gRPC listener does.
func (f *engineFlags) validate(insecure bool) error {
	switch f.engine {
	case "memory":
		if f.redisAddrs != "" {
			return errors.New("--redis-addr needs --engine redis")
		}
		if f.redisTLS {
			return errors.New("--redis-tls needs --engine redis")
		}
		return f.validateTLS()
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
		if !insecure && !f.redisTLS && !loopback.Host(host) {
			return fmt.Errorf("--redis-addr %s: Redis is spoken in plaintext, and %s is not a loopback address; speak TLS to it with --redis-tls, or on a network you trust add --insecure-plaintext", addr, host)
		}
	}
	if err := f.validateTLS(); err != nil {
		return err
	}
	if f.redisTimeout <= 0 {
		return fmt.Errorf("--redis-timeout must be positive, got %v", f.redisTimeout)
	}
	return nil
}

// validateTLS checks the --redis-tls-* flags, which all refine --redis-tls.
func (f *engineFlags) validateTLS() error {
	for _, g := range []struct{ name, value string }{
		{"--redis-tls-ca", f.redisTLSCA},
		{"--redis-tls-cert", f.redisTLSCert},
		{"--redis-tls-key", f.redisTLSKey},
		{"--redis-tls-server-name", f.redisTLSServerName},
	} {
		if g.value != "" && !f.redisTLS {
			return fmt.Errorf("%s needs --redis-tls: without it Redis is spoken in plaintext", g.name)
		}
	}
	if (f.redisTLSCert == "") != (f.redisTLSKey == "") {
		return errors.New("--redis-tls-cert and --redis-tls-key go together: a client certificate and its key")
	}
	return nil
}

// tlsConfig loads the files of the --redis-tls-* flags; nil without
// --redis-tls. Like the server's own, the files are refused when others
// may write them.
func (f *engineFlags) tlsConfig() (*tls.Config, error) {
	if !f.redisTLS {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.redisTLSServerName}
	if f.redisTLSCA != "" {
		pem, err := keyfile.Read(f.redisTLSCA)
		if err != nil {
			return nil, fmt.Errorf("--redis-tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--redis-tls-ca %s: no PEM certificate in the file", f.redisTLSCA)
		}
	}
	if f.redisTLSCert != "" {
		cert, err := loadFlagKeyPair("redis-tls-cert", f.redisTLSCert, "redis-tls-key", f.redisTLSKey)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
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
	tlsCfg, err := f.tlsConfig()
	if err != nil {
		return nil, nil, err
	}
	cfg.TLS = tlsCfg
	return []broker.Option{broker.WithEngine(redisengine.Factory(ctx, cfg))},
		[]any{"engine", "redis", "redis_addr", strings.Join(cfg.Addrs, ","), "redis_prefix", cfg.Prefix, "redis_tls", f.redisTLS}, nil
}
