package server

import (
	"fmt"
	"net/http"
	"net/url"

	connectcors "connectrpc.com/cors"
	"github.com/rs/cors"
)

// webCORS is the web handler's CORS policy: rs/cors, with the methods and
// headers the Connect, gRPC-Web and gRPC protocols need (connectrpc.com/cors
// lists them) and Authorization, for bearer tokens. Browsers send no
// cookies to it, so none are allowed.
type webCORS struct{ c *cors.Cors }

// maxPreflightAge is how long a browser may keep a preflight's answer.
const maxPreflightAge = 2 * 60 * 60

// newCORS returns the policy allowing origins; none means that no
// cross-origin call is allowed.
func newCORS(origins []string) (webCORS, error) {
	for _, o := range origins {
		if err := validateOrigin(o); err != nil {
			return webCORS{}, err
		}
	}
	if len(origins) == 0 {
		return webCORS{}, nil // rs/cors would take an empty list as "*"
	}
	return webCORS{c: cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: connectcors.AllowedMethods(),
		AllowedHeaders: append(connectcors.AllowedHeaders(), "Authorization"),
		ExposedHeaders: connectcors.ExposedHeaders(),
		MaxAge:         maxPreflightAge,
	})}, nil
}

// Handler wraps h in the policy.
func (w webCORS) Handler(h http.Handler) http.Handler {
	if w.c == nil {
		return h
	}
	return w.c.Handler(h)
}

// validateOrigin accepts "*" and origins as browsers send them: a scheme
// and a host, with a port or not, and nothing else. A "*" may stand for
// part of the host ("https://*.example.com"), as rs/cors allows.
func validateOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("server: allowed origin %q is not an origin such as https://app.example.com", o)
	}
	return nil
}
