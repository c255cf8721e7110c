package loopback_test

import (
	"testing"

	"github.com/roomcast/roomcast/internal/loopback"
)

func TestTarget(t *testing.T) {
	for target, want := range map[string]bool{
		"127.0.0.1:50051":                  true,
		"127.9.9.9:1":                      true,
		"localhost:50051":                  true,
		"LOCALHOST.:50051":                 true,
		"[::1]:50051":                      true,
		"localhost":                        true,
		"dns:///localhost:50051":           true,
		"dns://8.8.8.8/127.0.0.1:50051":    true,
		"passthrough:///127.0.0.1:50051":   true,
		"ipv4:127.0.0.1:1,127.0.0.2:2":     true,
		"ipv6:[::1]:50051":                 true,
		"unix:///run/roomcast.sock":        true,
		"unix-abstract:roomcast":           true,
		"10.0.0.1:50051":                   false,
		"0.0.0.0:50051":                    false,
		":50051":                           false,
		"roomcast.example.com:443":         false,
		"dns:///roomcast.example.com:443":  false,
		"ipv4:127.0.0.1:1,10.0.0.1:2":      false,
		"ipv4:":                            false,
		"xds:///roomcast":                  false,
		"[::ffff:10.0.0.1]:50051":          false,
		"passthrough:///10.0.0.1:50051":    false,
		"localhost.example.com:50051":      false,
		"dns:///":                          false,
		"":                                 false,
		"[::ffff:127.0.0.1]:50051":         true,
		"127.0.0.1.nip.io:50051":           false,
		"dns://localhost/10.0.0.1:50051":   false,
		"passthrough:///localhost:50051":   true,
		"dns:localhost:50051":              false,
		"unknown-scheme:///127.0.0.1:5005": false,
	} {
		if got := loopback.Target(target); got != want {
			t.Errorf("Target(%q) = %v, want %v", target, got, want)
		}
	}
}
