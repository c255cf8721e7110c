// Package faultproxy breaks connections on purpose, for tests: a TCP proxy
// on a loopback port that forwards to a server and can cut every
// connection, refuse new ones, or hold them unanswered, while the server
// itself stays up. Clients that must survive a network fault dial the
// proxy instead of the server.
package faultproxy

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections to a backend. What it does with a new
// connection is set by Refuse, Hold and Resume; Sever acts on the ones it
// forwards. Its methods are safe for concurrent use.
type Proxy struct {
	lis net.Listener

	mu       sync.Mutex
	backend  string
	mode     mode
	held     []net.Conn            // accepted while holding
	live     map[net.Conn]struct{} // forwarded, both ends
	accepted int
	closed   bool
	routines sync.WaitGroup // the accept loop and every forwarding
}

// mode is what the proxy does with a connection it accepts.
type mode uint8

const (
	forwarding mode = iota
	refusing        // close it at once
	holding         // keep it open, unanswered, until Resume
)

// Start runs a proxy to backend on 127.0.0.1 and a free port. It is closed,
// with every connection it holds or forwards, when the test ends.
func Start(t testing.TB, backend string) *Proxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{lis: lis, backend: backend, live: make(map[net.Conn]struct{})}
	p.routines.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

// Addr returns the address to dial instead of the backend's.
func (p *Proxy) Addr() string { return p.lis.Addr().String() }

// Sever closes every connection the proxy forwards, so that the calls on
// them fail as if the network had dropped them. New connections are
// forwarded, refused or held as before.
func (p *Proxy) Sever() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for conn := range p.live {
		conn.Close()
	}
	clear(p.live)
}

// Refuse makes the proxy close new connections as soon as it accepts them,
// as if the server were down, until Resume. Connections it holds stay held.
func (p *Proxy) Refuse() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = refusing
}

// Hold makes the proxy keep new connections open without forwarding a byte,
// as if the server were unreachable, until Resume.
func (p *Proxy) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = holding
}

// Resume forwards the connections held and those to come, to backend if it
// is not "", or else to the backend as it was.
func (p *Proxy) Resume(backend string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if backend != "" {
		p.backend = backend
	}
	p.mode = forwarding
	for _, conn := range p.held {
		p.forward(conn)
	}
	p.held = nil
}

// Accepted returns how many connections the proxy has accepted, whatever
// it then did with them.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

func (p *Proxy) accept() {
	for {
		conn, err := p.lis.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		p.accepted++
		switch {
		case p.closed || p.mode == refusing:
			conn.Close()
		case p.mode == holding:
			p.held = append(p.held, conn)
		default:
			p.forward(conn)
		}
		p.mu.Unlock()
	}
}

// forward pipes conn to a new connection to the backend. p.mu is held.
func (p *Proxy) forward(conn net.Conn) {
	p.live[conn] = struct{}{}
	backend := p.backend
	p.routines.Go(func() {
		defer p.drop(conn)
		up, err := net.Dial("tcp", backend)
		if err != nil {
			return // as if the server were down
		}
		if !p.track(conn, up) {
			return
		}
		defer p.drop(up)
		done := make(chan struct{}, 2)
		go func() { io.Copy(up, conn); done <- struct{}{} }()
		go func() { io.Copy(conn, up); done <- struct{}{} }()
		<-done // one direction ended: end both
		conn.Close()
		up.Close()
		<-done
	})
}

// track records up, the backend's end of conn, for Sever; unless conn was
// severed while up was dialled, in which case it closes up.
func (p *Proxy) track(conn, up net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.live[conn]; !ok {
		up.Close()
		return false
	}
	p.live[up] = struct{}{}
	return true
}

func (p *Proxy) drop(conn net.Conn) {
	conn.Close()
	p.mu.Lock()
	delete(p.live, conn)
	p.mu.Unlock()
}

func (p *Proxy) close() {
	p.lis.Close()
	p.mu.Lock()
	p.closed = true
	for conn := range p.live {
		conn.Close()
	}
	clear(p.live)
	for _, conn := range p.held {
		conn.Close()
	}
	p.held = nil
	p.mu.Unlock()
	p.routines.Wait()
}
