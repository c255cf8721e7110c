package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/loopback"
)

// clientFlags are the connection flags of the client commands: publish,
// subscribe, history and presence.
type clientFlags struct {
	server, token          string
	tlsCA, tlsServerName   string
	tlsCert, tlsKey        string // mutual TLS: the client's certificate
	insecurePlaintextToken bool
}

// define adds the flags to fs.
func (f *clientFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.server, "server", defaultServer,
		"connect to the server at `ADDR` (a gRPC target, such as host:port)")
	fs.StringVar(&f.token, "token", "",
		"send `TOKEN` (a JWT or an API key) as the bearer credential; better given as $ROOMCAST_TOKEN, which other users cannot read in the process list. Without --tls-ca it is sent only to a loopback --server")
	fs.StringVar(&f.tlsCA, "tls-ca", "",
		"connect with TLS, trusting the CA certificates in the PEM `FILE`; plaintext without it")
	fs.StringVar(&f.tlsServerName, "tls-server-name", "",
		"expect `NAME` in the server's certificate instead of the host of --server; needs --tls-ca")
	fs.StringVar(&f.tlsCert, "tls-cert", "",
		"mutual TLS: present the client certificate chain in the PEM `FILE`, for a server run with --tls-client-ca; needs --tls-key and --tls-ca")
	fs.StringVar(&f.tlsKey, "tls-key", "",
		"the PEM private key of --tls-cert, in `FILE`")
	fs.BoolVar(&f.insecurePlaintextToken, "insecure-plaintext-token", false,
		"send the token without TLS to a --server that is not loopback, where anyone on the network can read it and use it")
}

// validate checks that the flags make sense together. Its errors are usage
// errors.
func (f *clientFlags) validate() error {
	switch {
	case f.tlsServerName != "" && f.tlsCA == "":
		return errors.New("--tls-server-name needs --tls-ca: without it the connection is plaintext")
	case (f.tlsCert == "") != (f.tlsKey == ""):
		return errors.New("--tls-cert and --tls-key go together: a client certificate and its key")
	case f.tlsCert != "" && f.tlsCA == "":
		return errors.New("--tls-cert needs --tls-ca: a client certificate is presented over TLS, which --tls-ca turns on")
	case f.token != "" && f.tlsCA == "" && !f.insecurePlaintextToken && !loopback.Target(f.server):
		return fmt.Errorf("refusing to send the token in plaintext to %s, which is not a loopback address: anyone on the network could read it and use it. "+
			"Connect with TLS (--tls-ca FILE), or on a network you trust add --insecure-plaintext-token", f.server)
	case f.insecurePlaintextToken && f.tlsCA != "":
		return errors.New("--insecure-plaintext-token contradicts --tls-ca: give one or the other")
	}
	return nil
}

// options returns the client options the flags ask for.
func (f *clientFlags) options() ([]client.Option, error) {
	var opts []client.Option
	if f.tlsCA != "" {
		pem, err := os.ReadFile(f.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca: no PEM certificate in %s", f.tlsCA)
		}
		cfg := &tls.Config{RootCAs: pool, ServerName: f.tlsServerName, MinVersion: tls.VersionTLS12}
		if f.tlsCert != "" {
			cert, err := loadKeyPair(f.tlsCert, f.tlsKey)
			if err != nil {
				return nil, err
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, client.WithTLS(cfg))
	}
	if token := f.token; token != "" {
		opts = append(opts, client.WithBearerToken(token))
	}
	if f.insecurePlaintextToken {
		opts = append(opts, client.WithInsecurePlaintextToken())
	}
	return opts, nil
}

// dial validates the flags and makes the client; on failure it says why on
// stderr and returns the exit code. (The connection itself is made by the
// first call.)
func (f *clientFlags) dial(stderr io.Writer, cmd string) (*client.Client, int) {
	if err := f.validate(); err != nil {
		return nil, usageFailure(stderr, cmd, err.Error())
	}
	opts, err := f.options()
	if err != nil {
		return nil, f.failed(stderr, cmd, err)
	}
	c, err := client.Dial(f.server, opts...)
	if err != nil {
		return nil, f.failed(stderr, cmd, err)
	}
	return c, exitOK
}
