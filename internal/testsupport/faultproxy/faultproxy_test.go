package faultproxy_test

import (
	"bufio"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/roomcast/roomcast/internal/testsupport/faultproxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echo runs a server that answers each line with name, ":" and the line,
// until the test ends.
func echo(t *testing.T, name string) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Go(func() {
				r := bufio.NewReader(conn)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(conn, name+":"+line); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return lis.Addr().String()
}

// dial connects to addr, closed when the test ends.
func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, bufio.NewReader(conn)
}

// ask sends line and returns the answer.
func ask(t *testing.T, conn net.Conn, r *bufio.Reader, line string) string {
	t.Helper()
	if _, err := io.WriteString(conn, line+"\n"); err != nil {
		t.Fatal(err)
	}
	answer, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("asked %q: %v", line, err)
	}
	return answer
}

// expectEnd checks that the connection is closed from the proxy's side.
func expectEnd(t *testing.T, r *bufio.Reader, what string) {
	t.Helper()
	if line, err := r.ReadString('\n'); err == nil {
		t.Fatalf("%s: read %q, want the connection closed", what, line)
	}
}

func TestSeverRefuseResume(t *testing.T) {
	p := faultproxy.Start(t, echo(t, "a"))
	conn, r := dial(t, p.Addr())
	if got := ask(t, conn, r, "hi"); got != "a:hi\n" {
		t.Fatalf("got %q through the proxy", got)
	}
	p.Sever()
	expectEnd(t, r, "after Sever")

	p.Refuse()
	_, r = dial(t, p.Addr())
	expectEnd(t, r, "while refusing")

	p.Resume("")
	conn, r = dial(t, p.Addr())
	if got := ask(t, conn, r, "again"); got != "a:again\n" {
		t.Fatalf("got %q after Resume", got)
	}
	if n := p.Accepted(); n != 3 {
		t.Errorf("Accepted() = %d, want 3", n)
	}
}

// A held connection is forwarded on Resume, to the backend Resume names:
// the answer comes from b, so nothing went through before.
func TestHoldThenResumeElsewhere(t *testing.T) {
	p := faultproxy.Start(t, echo(t, "a"))
	before, beforeR := dial(t, p.Addr())
	ask(t, before, beforeR, "x")

	p.Hold()
	p.Sever()
	expectEnd(t, beforeR, "after Sever")
	held, r := dial(t, p.Addr())
	if _, err := io.WriteString(held, "held\n"); err != nil {
		t.Fatal(err)
	}
	// Resume only once the proxy has the connection, or it would forward
	// it to b without holding it first.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for p.Accepted() < 2 {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("the proxy did not accept the connection")
		}
	}
	p.Resume(echo(t, "b"))
	if got, err := r.ReadString('\n'); err != nil || got != "b:held\n" {
		t.Fatalf("held connection got %q, %v; want b's answer", got, err)
	}
}
