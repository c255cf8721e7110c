package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"sync/atomic"

	"google.golang.org/grpc/credentials"

	"github.com/roomcast/roomcast/internal/keyfile"
	"github.com/roomcast/roomcast/internal/loopback"
)

// transportFlags are serve's transport security flags: TLS, mutual TLS, or
// plaintext, which is allowed beyond loopback only when asked for by name.
type transportFlags struct {
	cert, key, clientCA string
	insecurePlaintext   bool

	files *tlsFiles // what the files held when last read; see transportCredentials
}

// define adds the flags to fs.
func (f *transportFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.cert, "tls-cert", "",
		"serve TLS (1.2 or later) with the PEM certificate chain in `FILE`, server certificate first; needs --tls-key")
	fs.StringVar(&f.key, "tls-key", "",
		"the PEM private key of --tls-cert, in `FILE`")
	fs.StringVar(&f.clientCA, "tls-client-ca", "",
		"mutual TLS: require every client to present a certificate signed by a CA in the PEM `FILE`; needs --tls-cert")
	fs.BoolVar(&f.insecurePlaintext, "insecure-plaintext", false,
		"allow plaintext gRPC on an address that is not loopback, where anyone on the network can read and forge the traffic, credentials included")
}

// tls reports whether the flags ask for TLS.
func (f *transportFlags) tls() bool { return f.cert != "" }

// name says how connections are secured, for the log.
func (f *transportFlags) name() string {
	switch {
	case f.clientCA != "":
		return "mtls"
	case f.tls():
		return "tls"
	}
	return "plaintext"
}

// validate checks that the flags make sense together, and that plaintext is
// not served beyond loopback unless --insecure-plaintext says so. Its errors
// are usage errors.
func (f *transportFlags) validate(listen string) error {
	switch {
	case (f.cert == "") != (f.key == ""):
		return errors.New("--tls-cert and --tls-key go together: give both, or neither for plaintext")
	case f.clientCA != "" && !f.tls():
		return errors.New("--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS with client certificates")
	case f.insecurePlaintext && f.tls():
		return errors.New("--insecure-plaintext contradicts --tls-cert: give one or the other")
	case f.tls():
		return nil
	}
	return checkPlaintext(listen, f.insecurePlaintext)
}

// checkPlaintext decides whether plaintext gRPC may be served on listen
// (host:port): always on a loopback address, elsewhere only with
// --insecure-plaintext (insecure). Its error says what to do instead.
func checkPlaintext(listen string, insecure bool) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", listen, err)
	}
	if insecure || loopback.Host(host) {
		return nil
	}
	return plaintextRefusal(listen)
}

// plaintextRefusal is the error for plaintext on an address that is not
// loopback.
func plaintextRefusal(addr string) error {
	return fmt.Errorf("refusing to serve plaintext gRPC on %s, which is not a loopback address: "+
		"anyone on the network could read and forge its traffic, credentials included. "+
		"Serve TLS with --tls-cert FILE --tls-key FILE, listen on loopback (--listen 127.0.0.1:50051), "+
		"or, on a network you trust, add --insecure-plaintext", addr)
}

// isLoopbackAddr reports whether a listener's address is a loopback one. A
// name such as "localhost" is resolved when listening, so serve checks the
// address it got as well as the one it was given.
func isLoopbackAddr(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// transportCredentials loads the certificate, key and client CA and returns the
// transport credentials to serve with, or nil for plaintext. reloadTLS reads
// the files again.
func (f *transportFlags) transportCredentials() (credentials.TransportCredentials, error) {
	if !f.tls() {
		return nil, nil
	}
	f.files = &tlsFiles{cert: f.cert, key: f.key, clientCA: f.clientCA}
	if err := f.files.load(); err != nil {
		return nil, err
	}
	return credentials.NewTLS(f.files.config()), nil
}

// reloadTLS reads the certificate, key and client CA files again, for the
// handshakes that follow; on error it keeps those in use. Without TLS it
// does nothing.
func (f *transportFlags) reloadTLS() error {
	if f.files == nil {
		return nil
	}
	return f.files.load()
}

// tlsFiles serves TLS 1.2 or later with the certificate chain and key of two
// PEM files and, for mutual TLS, the client CAs of a third. Every handshake
// takes what the files held when load last read them, so that they can be
// replaced while the server runs (a renewed certificate, a new client CA)
// without a restart; connections already open are not affected.
type tlsFiles struct {
	cert, key, clientCA string
	state               atomic.Pointer[tlsState]
}

// tlsState is what the files held; never changed once loaded.
type tlsState struct {
	cert      *tls.Certificate
	forClient *tls.Config // the configuration of a handshake, for mutual TLS
}

// load reads the files. Files that their group or every user may write are
// refused. On error it keeps what it had.
func (f *tlsFiles) load() error {
	cert, err := loadKeyPair(f.cert, f.key)
	if err != nil {
		return err
	}
	st := &tlsState{cert: &cert}
	if f.clientCA != "" {
		pem, err := keyfile.Read(f.clientCA)
		if err != nil {
			return fmt.Errorf("--tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--tls-client-ca %s: no PEM certificate in the file", f.clientCA)
		}
		st.forClient = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: f.certificate,
			ClientCAs:      pool,
			ClientAuth:     tls.RequireAndVerifyClientCert,
		}
	}
	f.state.Store(st)
	return nil
}

// config returns the server's TLS configuration, which reads the files'
// current content at every handshake.
func (f *tlsFiles) config() *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: f.certificate}
	if f.clientCA != "" {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return f.state.Load().forClient, nil }
	}
	return cfg
}

func (f *tlsFiles) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.state.Load().cert, nil
}

// loadKeyPair is tls.LoadX509KeyPair for files that only their owner may
// write.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	return loadFlagKeyPair("tls-cert", certFile, "tls-key", keyFile)
}

// loadFlagKeyPair is loadKeyPair for the flags named certFlag and keyFlag,
// which its errors name.
func loadFlagKeyPair(certFlag, certFile, keyFlag, keyFile string) (tls.Certificate, error) {
	certPEM, err := keyfile.Read(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--%s: %w", certFlag, err)
	}
	keyPEM, err := keyfile.Read(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--%s: %w", keyFlag, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--%s %s, --%s %s: %w", certFlag, certFile, keyFlag, keyFile, err)
	}
	return cert, nil
}
