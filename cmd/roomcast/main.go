// Command roomcast runs a roomcast broker server, and publishes to and
// subscribes to its rooms from the command line:
//
//	roomcast serve [flags]
//	roomcast publish [flags] ROOM [MESSAGE | -]
//	roomcast subscribe [flags] ROOM...
//	roomcast history [flags] ROOM
//	roomcast presence [flags] ROOM
//	roomcast apikey new [flags]
//	roomcast version
//	roomcast help [command]
//
// Flags may also follow the arguments, and every flag can be set from the
// environment (ROOMCAST_<FLAG>); serve's also from a config file (see
// flags.go). Run "roomcast help" for every command and flag.
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
		writeSummary(stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			cmd := lookup(args[1])
			if cmd == nil {
				fmt.Fprintf(stderr, "roomcast help: unknown command %q\nRun \"roomcast help\" for the commands.\n", args[1])
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
		fmt.Fprintf(stderr, "roomcast: unknown command %q\nRun \"roomcast help\" for the commands.\n", args[0])
		return exitUsage
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

// benchMoved points from the old "roomcast bench" to its own command.
const benchMoved = "roomcast bench is now a command of its own, so that roomcast builds without NATS: run `go run ./cmd/roomcast-bench [flags]` (its flags are bench's)"

// runFunc runs a command with the arguments left after its flags and
// returns the exit code. With exitUsage it has said what is wrong, and the
// caller adds where to find the command's usage.
type runFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// command is one subcommand.
type command struct {
	name    string
	args    string // the arguments, for the usage line
	summary string // one line, for the list of commands
	detail  string // what it does, for its own usage
	minArgs int
	maxArgs int // -1 for no limit
	// configFile gives the command --config FILE, a file of flag
	// settings, and --print-config.
	configFile bool
	// setup defines the command's flags on fs and returns what runs it.
	setup func(fs *flag.FlagSet) runFunc
}

// commands are the subcommands, in the order help lists them.
var commands = []*command{serveCmd, publishCmd, subscribeCmd, historyCmd, presenceCmd, apikeyCmd, versionCmd}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// flagSet returns a flag set with the command's flags, and what runs the
// command with them. It prints nothing: run reports errors.
func (c *command) flagSet() (*flag.FlagSet, runFunc) {
	fs := flag.NewFlagSet("roomcast "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if c.configFile {
		fs.String(configFlag, "", "read flag settings from `FILE`: one a line, a flag's name and its value (\"name value\"; # starts a comment); flags and environment variables override it")
		fs.Bool(printConfigFlag, false, "print the settings the command would run with, and where each came from, in the format of --config files, with secrets masked; then exit")
	}
	return fs, c.setup(fs)
}

func (c *command) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, runCmd := c.flagSet()
	p, err := parseArgs(fs, args, func() *flag.FlagSet { fs, _ := c.flagSet(); return fs })
	switch {
	case errors.Is(err, flag.ErrHelp):
		c.writeUsage(stdout)
		return exitOK
	case err != nil:
		return c.usageError(stderr, "%v", err)
	case len(p.args) < c.minArgs || c.maxArgs >= 0 && len(p.args) > c.maxArgs:
		return c.usageError(stderr, "wrong number of arguments (%d): want %s", len(p.args), c.args)
	}
	if c.configFile && fs.Lookup(printConfigFlag).Value.String() == "true" {
		if err := writeConfig(stdout, c.name, fs, p); err != nil {
			fmt.Fprintf(stderr, "roomcast %s: %v\n", c.name, err)
			return exitFail
		}
		return exitOK
	}
	code := runCmd(ctx, p.args, stdout, stderr)
	if code == exitUsage { // it found its flags' values wrong together
		fmt.Fprintln(stderr, c.helpPointer())
	}
	return code
}

// usageError reports a usage error, and where to find the usage, on w, and
// returns exitUsage.
func (c *command) usageError(w io.Writer, format string, args ...any) int {
	fmt.Fprintf(w, "roomcast %s: %s\n%s\n", c.name, fmt.Sprintf(format, args...), c.helpPointer())
	return exitUsage
}

// helpPointer says where the command's usage is.
func (c *command) helpPointer() string {
	return fmt.Sprintf("Run \"roomcast help %s\" for usage.", c.name)
}

// writeUsage describes the command and every one of its flags.
func (c *command) writeUsage(w io.Writer) {
	fs, _ := c.flagSet()
	line := "roomcast " + c.name + " [flags]"
	if c.args != "" {
		line += " " + c.args
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", line, strings.TrimSpace(c.detail))
	fmt.Fprintf(w, "\nFlags (each also set by the environment variable named after it):\n")
	fs.VisitAll(func(f *flag.Flag) {
		placeholder, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if placeholder != "" {
			fmt.Fprintf(w, " %s", placeholder)
		}
		fmt.Fprintf(w, "\n        %s (", usage)
		if f.DefValue != "" {
			fmt.Fprintf(w, "default %s; ", f.DefValue)
		}
		fmt.Fprintf(w, "$%s)\n", envVar(f.Name))
	})
	fmt.Fprintf(w, "  --help\n        show this help\n")
}

// writeSummary lists the commands.
func writeSummary(w io.Writer) {
	fmt.Fprint(w, `roomcast is a gRPC room broker: publishers send messages to named rooms, and
every subscriber of a room receives them in order.

Usage:
  roomcast <command> [arguments and flags]
  roomcast help [command]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s  %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Flags may come before or after the arguments; after "--", everything is an
argument (roomcast publish chat.lobby -- -1). Every flag can also be set
from the environment, as ROOMCAST_ and its name in upper snake case
(--max-rooms: ROOMCAST_MAX_ROOMS), and serve's from a --config file;
flags win over the environment, which wins over the file.

Exit status: 0 on success or when stopped by SIGINT or SIGTERM, 1 when the
command fails, 2 for a usage error.
`)
}

// writeUsage describes every command and every flag.
func writeUsage(w io.Writer) {
	writeSummary(w)
	for _, c := range commands {
		fmt.Fprintf(w, "\n")
		c.writeUsage(w)
	}
}

// newLogger returns the commands' logger: text lines on w.
func newLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
