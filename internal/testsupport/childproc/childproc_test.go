//go:build unix

package childproc_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/roomcast/roomcast/internal/testsupport/childproc"
)

// echo is a child that says "ready", then repeats each line of its input
// until the input closes; with the value "fail" it fails instead.
var echo = childproc.Role{Name: "echo process", Env: "ROOMCAST_TEST_CHILDPROC_ECHO"}

func init() {
	echo.RunIfSelected(func(value string) error {
		if value == "fail" {
			return errors.New("asked to fail")
		}
		stop, err := echo.Profile(os.Getenv("CPU_FILE"), os.Getenv("MEM_FILE"))
		if err != nil {
			return err
		}
		os.Stdout.WriteString("ready\n")
		buf := make([]byte, 512)
		for {
			n, err := os.Stdin.Read(buf)
			if n > 0 {
				os.Stdout.Write(buf[:n])
			}
			if err != nil {
				stop()
				return nil
			}
		}
	})
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A child started in a role plays it: it talks over its standard input and
// output, stops when its input closes, and writes the profiles it is asked
// for.
func TestChildPlaysItsRole(t *testing.T) {
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu"), filepath.Join(dir, "mem")
	t.Setenv("CPU_FILE", cpu)
	t.Setenv("MEM_FILE", mem)
	c := echo.Start(t, "1")
	for _, want := range []string{"ready", "hello", "again"} {
		if want != "ready" {
			if err := c.WriteLine(want); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := c.ReadLine(); err != nil || got != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); err != nil {
		t.Fatalf("second Wait: %v", err)
	}
	for _, file := range []string{cpu, mem} {
		if fi, err := os.Stat(file); err != nil || fi.Size() == 0 {
			t.Errorf("profile %s: %v, %v", file, fi, err)
		}
	}
}

// A child whose role fails exits with status 1, which Wait returns.
func TestChildFailureIsReported(t *testing.T) {
	c := echo.Start(t, "fail")
	if line, err := c.ReadLine(); err == nil {
		t.Fatalf("a failing child said %q", line)
	}
	var exit *exec.ExitError
	if err := c.Wait(); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("Wait: %v, want exit status 1", err)
	}
	if err := c.Wait(); !errors.As(err, &exit) {
		t.Fatalf("second Wait: %v, want the same exit", err)
	}
}

// sink keeps TestUsage's allocations from being optimized away.
var sink []byte

// Usage counts what this process spends.
func TestUsage(t *testing.T) {
	before, err := childproc.Usage()
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		sink = make([]byte, 1<<10)
	}
	after, err := childproc.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if after.Mallocs < before.Mallocs+100 || after.Bytes < before.Bytes+100<<10 || after.CPU < before.CPU {
		t.Fatalf("from %+v to %+v after 100 allocations of 1 KiB", before, after)
	}
}

// ServeLoopback serves while meanwhile runs, closes the server after it,
// and returns both their errors.
func TestServeLoopback(t *testing.T) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "served")
	})}
	stop := errors.New("meanwhile's error")
	err := childproc.ServeLoopback(srv, func(addr net.Addr) error {
		resp, err := http.Get("http://" + addr.String())
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if body, err := io.ReadAll(resp.Body); err != nil || string(body) != "served" {
			return fmt.Errorf("read %q, %v", body, err)
		}
		http.DefaultClient.CloseIdleConnections()
		return stop
	})
	if !errors.Is(err, stop) || !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("ServeLoopback: %v, want meanwhile's error and the server closed", err)
	}
}
