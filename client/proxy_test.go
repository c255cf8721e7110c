package client_test

import (
	"io"
	"net"
	"sync"
	"testing"

	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/server"
)

// proxy forwards TCP connections on a loopback port to a backend, and can
// cut them all at once, or refuse new ones, to break a client's connection
// while the server stays up.
type proxy struct {
	lis     net.Listener
	backend string

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	refusing bool // close connections as soon as they are accepted
	closed   bool
	accepted int // connections forwarded

	wg sync.WaitGroup // the accept loop and every copy
}

// newProxy starts a proxy to backend, closed at the end of the test.
func newProxy(t testing.TB, backend string) *proxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{lis: lis, backend: backend, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.lis.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.lis.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		refuse := p.refusing || p.closed
		p.mu.Unlock()
		if refuse {
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.backend)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			in.Close()
			out.Close()
			continue
		}
		p.conns[in], p.conns[out] = struct{}{}, struct{}{}
		p.accepted++
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(out, in)
		go p.pipe(in, out)
	}
}

// pipe copies from src to dst until either breaks, then closes both.
func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// sever closes every forwarded connection and returns how many pairs it cut.
func (p *proxy) sever() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	n := len(p.conns) / 2
	clear(p.conns)
	return n
}

// refuse makes the proxy close new connections at once (on) or forward
// them again (off).
func (p *proxy) refuse(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refusing = on
}

func (p *proxy) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.lis.Close()
	p.sever()
	p.wg.Wait()
}

// startAt runs a server on addr until the end of the test, or its Close.
func startAt(t testing.TB, addr string, opts ...server.Option) (*server.Server, string) {
	t.Helper()
	return servertest.StartAt(t, addr, opts...)
}
