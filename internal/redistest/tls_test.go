package redistest_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/roomcast/roomcast/internal/redisproc"
	"github.com/roomcast/roomcast/internal/redistest"
)

// A TLS server speaks TLS alone, on Addr, across a restart; with
// WithClientCerts it turns away a client without a certificate.
func TestTLS(t *testing.T) {
	for _, tc := range []struct {
		name        string
		opt         redistest.Option
		wantsClient bool
	}{
		{"WithTLS", redistest.WithTLS(), false},
		{"WithClientCerts", redistest.WithClientCerts(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := redistest.Start(t, tc.opt)
			if err := s.Do(t, "PING").Error(); err != nil {
				t.Fatal(err)
			}
			if redisproc.Ping(s.Addr) == nil {
				t.Error("a plaintext PING was answered")
			}
			s.Restart(t)
			if err := s.Do(t, "PING").Error(); err != nil {
				t.Fatalf("after Restart: %v", err)
			}
			cfg := s.TLS.ClientConfig()
			cfg.Certificates = nil
			if err := ping(s.Addr, cfg); (err != nil) != tc.wantsClient {
				t.Errorf("PING without a client certificate: %v", err)
			}
		})
	}
}

// ping sends PING on a client of its own, with cfg.
func ping(addr string, cfg *tls.Config) error {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true, DisableCache: true, TLSConfig: cfg})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Do(ctx, c.B().Ping().Build()).Error()
}
