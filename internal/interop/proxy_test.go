package interop_test

import (
	"io"
	"net"
	"sync"
	"testing"
)

// proxy forwards TCP connections to a server, and can cut them all and hold
// new ones until told to go on, to a server of the test's choosing.
type proxy struct {
	lis net.Listener

	mu       sync.Mutex
	backend  string
	holding  bool
	held     []net.Conn
	live     map[net.Conn]bool
	accepts  int
	closed   bool
	routines sync.WaitGroup
}

func startProxy(t *testing.T, backend string) *proxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{lis: lis, backend: backend, live: map[net.Conn]bool{}}
	p.routines.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.lis.Addr().String() }

func (p *proxy) accept() {
	for {
		conn, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepts++
		switch {
		case p.closed:
			conn.Close()
		case p.holding:
			p.held = append(p.held, conn)
		default:
			p.forward(conn, p.backend)
		}
		p.mu.Unlock()
	}
}

// forward pipes conn to a new connection to backend. p.mu is held.
func (p *proxy) forward(conn net.Conn, backend string) {
	p.live[conn] = true
	p.routines.Go(func() {
		defer p.drop(conn)
		up, err := net.Dial("tcp", backend)
		if err != nil {
			return // as if the server were down
		}
		if !p.track(up) {
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

// track records a connection that cut must close, unless cut ran since the
// connection it serves was accepted.
func (p *proxy) track(up net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.holding {
		up.Close()
		return false
	}
	p.live[up] = true
	return true
}

func (p *proxy) drop(conn net.Conn) {
	conn.Close()
	p.mu.Lock()
	delete(p.live, conn)
	p.mu.Unlock()
}

// cut closes every forwarded connection, so the streams on them end, and
// holds the connections accepted from now on (not forwarding their bytes)
// until resume.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holding = true
	for conn := range p.live {
		conn.Close()
	}
}

// resume forwards the held connections and those to come, to backend if it
// is not "".
func (p *proxy) resume(backend string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if backend != "" {
		p.backend = backend
	}
	p.holding = false
	for _, conn := range p.held {
		p.forward(conn, p.backend)
	}
	p.held = nil
}

func (p *proxy) accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepts
}

func (p *proxy) close() {
	p.lis.Close()
	p.mu.Lock()
	p.closed = true
	for conn := range p.live {
		conn.Close()
	}
	for _, conn := range p.held {
		conn.Close()
	}
	p.held = nil
	p.mu.Unlock()
	p.routines.Wait()
}
