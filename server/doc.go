// Package server is roomcast's gRPC adapter: it serves roomcast.v1.BrokerService
// over a broker, with health, reflection, keepalive enforcement, metrics and
// a graceful shutdown that ends subscriber streams so their clients
// reconnect elsewhere.
package server
