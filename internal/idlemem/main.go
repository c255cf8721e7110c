// Command idlemem measures what idle Subscribe streams and their
// connections cost a roomcast server: it serves with the defaults of
// "roomcast serve" on loopback, in this process, and runs its clients in a
// child process (this program again, with -client), which holds the
// connections and streams while the server's memory is read.
//
//	go run ./internal/idlemem -connections 10000 -streams 1
//	go run ./internal/idlemem -connections 1000 -streams 100
//
// The server's memory is read three times, each after garbage collections
// (until goroutine stacks stop shrinking) and returning freed memory to the
// system: with no client, with the connections open (each made one health
// check), and with every stream open, joined to a room and left idle for
// -settle. It prints the resident set (VmRSS) and
// the Go heap in use plus goroutine stacks, per connection and per stream.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomcast/roomcast/server"
)

// childEnv is set to 1 in the client process's environment, for a test
// binary standing in for this program to know it is the child.
const childEnv = "IDLEMEM_CHILD"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	connections int
	streams     int
	rooms       int
	client      string        // the server's address: run as the client process
	heapProfile string        // where to write a heap profile once subscribed
	settle      time.Duration // how long the streams stay idle before the last reading
	serverOpts  []server.Option
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("idlemem", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.connections, "connections", 1000, "client connections")
	fs.IntVar(&o.streams, "streams", 1, "Subscribe streams per connection, each joined to one room")
	fs.IntVar(&o.rooms, "rooms", 100, "rooms the streams join, round robin")
	fs.StringVar(&o.client, "client", "", "run as the client process of the server at `ADDR` (used by idlemem itself)")
	fs.StringVar(&o.heapProfile, "heapprofile", "", "write the server's heap profile to `FILE` once every stream is open (go tool pprof -sample_index=inuse_space)")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "how long every stream stays idle before the server's memory is read: what an idle server lets go of after a while (its connections' writers exit after one to two seconds) goes by then")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.connections < 1 || o.streams < 1 || o.rooms < 1 {
		fmt.Fprintln(stderr, "idlemem: -connections, -streams and -rooms must be positive")
		return 2
	}
	var err error
	if o.client != "" {
		err = runClient(o, os.Stdin, stdout)
	} else {
		err = measure(o, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "idlemem: %v\n", err)
		return 1
	}
	return 0
}

// serve starts a server with the defaults of "roomcast serve": metrics
// registered, an access log at its default level, a logger at info.
// All the clients share one address, so the limits that count per client
// address (connections, streams and commands per credential) are raised to
// let them in; they cost nothing while unused.
func serve(o options) (*server.Server, net.Listener, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	streams := o.connections * o.streams
	opts := []server.Option{
		server.WithLogger(log),
		server.WithMetrics(prometheus.NewRegistry()),
		server.WithAccessLog(server.DefaultAccessLogLevel),
		server.WithMaxConnections(max(server.DefaultMaxConnections, o.connections+10)),
		server.WithMaxStreams(max(server.DefaultMaxStreams, streams)),
		server.WithMaxStreamsPerConnection(uint32(max(server.DefaultMaxStreamsPerConnection, o.streams+1))),
		server.WithMaxStreamsPerCredential(max(server.DefaultMaxStreamsPerCredential, streams)),
		server.WithCredentialCommandRate(float64(max(server.DefaultCredentialCommandRate, 2*streams)), max(server.DefaultCredentialCommandBurst, 2*streams)),
	}
	srv, err := server.New(append(opts, o.serverOpts...)...)
	if err != nil {
		return nil, nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	return srv, lis, nil
}

// measure serves, runs the client process through its phases and prints
// the server's memory at each.
func measure(o options, stdout io.Writer) error {
	srv, lis, err := serve(o)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	defer func() {
		srv.Close()
		<-served
	}()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-client", lis.Addr().String(),
		"-connections", fmt.Sprint(o.connections), "-streams", fmt.Sprint(o.streams), "-rooms", fmt.Sprint(o.rooms))
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), childEnv+"=1")
	toClient, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	fromClient, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	base := readMemory()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		toClient.Close() // the client exits when its input ends
		cmd.Wait()
	}()
	lines := bufio.NewScanner(fromClient)
	expect := func(want string) error {
		if !lines.Scan() {
			return errors.Join(fmt.Errorf("the client process ended before %q", want), lines.Err())
		}
		if got := strings.TrimSpace(lines.Text()); got != want {
			return fmt.Errorf("the client process said %q, want %q", got, want)
		}
		return nil
	}

	if err := expect("connected"); err != nil {
		return err
	}
	connected := readMemory()
	if _, err := io.WriteString(toClient, "subscribe\n"); err != nil {
		return err
	}
	if err := expect("subscribed"); err != nil {
		return err
	}
	time.Sleep(o.settle) // a measurement of the idle state, not a wait for a condition
	subscribed := readMemory()
	report(stdout, o, base, connected, subscribed)
	if o.heapProfile != "" {
		return writeHeapProfile(o.heapProfile)
	}
	return nil
}
