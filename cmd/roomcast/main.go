// Command roomcast runs a roomcast broker server, and publishes to and
// subscribes to its rooms from the command line:
//
//	roomcast serve [flags]
//	roomcast publish [flags] ROOM MESSAGE
//	roomcast subscribe [flags] ROOM...
//	roomcast apikey new [flags]
//	roomcast help [command]
//
// Run "roomcast help" for every command and flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the process
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the command failed
	exitUsage = 2 // unknown command, bad flag or arguments
)

// run runs the command line args (without the program name) and returns the
// exit code. ctx is done when the process is asked to stop (SIGINT or
// SIGTERM); commands then end cleanly with exitOK.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "roomcast: no command given\n\n")
		writeUsage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			cmd := lookup(args[1])
			if cmd == nil {
				fmt.Fprintf(stderr, "roomcast help: unknown command %q\n\n", args[1])
				writeUsage(stderr)
				return exitUsage
			}
			cmd.writeUsage(stdout)
			return exitOK
		}
		writeUsage(stdout)
		return exitOK
	case "bench":
		fmt.Fprintln(stderr, benchMoved)
		return exitUsage
	}
	cmd := lookup(args[0])
	if cmd == nil {
		fmt.Fprintf(stderr, "roomcast: unknown command %q\n\n", args[0])
		writeUsage(stderr)
		return exitUsage
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

// benchMoved points from the old "roomcast bench" to its own command.
const benchMoved = "roomcast bench is now a command of its own, so that roomcast builds without NATS: run `go run ./cmd/roomcast-bench [flags]` (its flags are bench's)"

// runFunc runs a command with the arguments left after its flags and
// returns the exit code; with exitUsage, the caller adds the usage.
type runFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// command is one subcommand.
type command struct {
	name    string
	args    string // the arguments after the flags, for the usage line
	summary string // one line, for the list of commands
	detail  string // what it does, for its own usage
	minArgs int
	maxArgs int // -1 for no limit
	// setup defines the command's flags on fs and returns what runs it.
	setup func(fs *flag.FlagSet) runFunc
}

// commands are the subcommands, in the order help lists them.
var commands = []*command{serveCmd, publishCmd, subscribeCmd, apikeyCmd}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// flagSet returns a flag set for the command that reports errors to w. Its
// Usage does nothing: run prints the usage where it belongs.
func (c *command) flagSet(w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("roomcast "+c.name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {}
	return fs
}

func (c *command) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := c.flagSet(stderr)
	runCmd := c.setup(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.writeUsage(stdout)
			return exitOK
		}
		fmt.Fprintln(stderr) // flag printed the error
		c.writeUsage(stderr)
		return exitUsage
	}
	if n := fs.NArg(); n < c.minArgs || c.maxArgs >= 0 && n > c.maxArgs {
		fmt.Fprintf(stderr, "roomcast %s: wrong number of arguments (%d): want %s\n\n", c.name, n, c.args)
		c.writeUsage(stderr)
		return exitUsage
	}
	code := runCmd(ctx, fs.Args(), stdout, stderr)
	if code == exitUsage { // it found its flags' values wrong together
		fmt.Fprintln(stderr)
		c.writeUsage(stderr)
	}
	return code
}

// writeUsage describes the command and every one of its flags.
func (c *command) writeUsage(w io.Writer) {
	fs := c.flagSet(io.Discard)
	c.setup(fs)
	line := "roomcast " + c.name + " [flags]"
	if c.args != "" {
		line += " " + c.args
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", line, strings.TrimSpace(c.detail))
	fmt.Fprintf(w, "\nFlags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		placeholder, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if placeholder != "" {
			fmt.Fprintf(w, " %s", placeholder)
		}
		fmt.Fprintf(w, "\n        %s", usage)
		if f.DefValue != "" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
	fmt.Fprintf(w, "  --help\n        show this help\n")
}

// writeUsage describes every command and every flag.
func writeUsage(w io.Writer) {
	fmt.Fprint(w, `roomcast is a gRPC room broker: publishers send messages to named rooms, and
every subscriber of a room receives them in order.

Usage:
  roomcast <command> [flags] [arguments]
  roomcast help [command]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s  %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Flags go before arguments. Exit status: 0 on success or when stopped by
SIGINT or SIGTERM, 1 when the command fails, 2 for a usage error.
`)
	for _, c := range commands {
		fmt.Fprintf(w, "\n")
		c.writeUsage(w)
	}
}

// envOr returns the value of the environment variable key, or def when it
// is unset or empty.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// envOrUnset returns the value of the environment variable key, even if
// empty, or def when it is unset.
func envOrUnset(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

// newLogger returns the commands' logger: text lines on w.
func newLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
