package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/peterbourgon/ff/v3"
)

// Every flag of every command can also be set from the environment, and
// serve's from a config file: ff layers both onto the standard flag
// package, with this precedence:
//
//	flags on the command line > ROOMCAST_<FLAG> > --config FILE > defaults
//
// The variable of a flag is its name in upper snake case after "ROOMCAST_"
// (--max-rooms: ROOMCAST_MAX_ROOMS). A variable set to the empty string
// counts as unset, except ROOMCAST_METRICS_LISTEN, ROOMCAST_HTTP_LISTEN and
// ROOMCAST_HTTP_ALLOWED_ORIGINS, which turn metrics, the web listener and
// cross-origin calls off as their flags set to "" do.

// envPrefix starts the name of every flag's environment variable.
const envPrefix = "ROOMCAST"

// Flags that every command with a config file has.
const (
	configFlag      = "config"
	printConfigFlag = "print-config"
)

// emptyEnvSets names the flags whose variable, set to the empty string,
// sets the flag to the empty string rather than counting as unset.
var emptyEnvSets = map[string]bool{"metrics-listen": true, "http-listen": true, "http-allowed-origins": true}

// envVar returns the environment variable of the flag name.
func envVar(name string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Where a flag's value came from.
const (
	fromDefault = "default"
	fromFlag    = "flag"
	fromEnv     = "environment"
	fromFile    = "config file"
)

// parsed is the outcome of parsing a command line: the arguments that are
// not flags, and where each flag's value came from.
type parsed struct {
	args    []string
	sources map[string]string // flag name: fromFlag, fromEnv or fromFile; absent for fromDefault
}

// source says where the flag name's value came from.
func (p *parsed) source(name string) string {
	if s, ok := p.sources[name]; ok {
		return s
	}
	return fromDefault
}

// parseArgs sets fs's flags from args, the environment and, when fs has a
// --config flag, the file it names. Flags may come before, between and after
// the arguments; "--" ends the flags, so that an argument may start with
// "-". It returns flag.ErrHelp for -h or --help. fresh returns another flag
// set like fs, on which to find which variable is wrong should one be.
func parseArgs(fs *flag.FlagSet, args []string, fresh func() *flag.FlagSet) (*parsed, error) {
	flagArgs, rest := splitArgs(fs, args)
	p := &parsed{args: rest, sources: map[string]string{}}
	for _, a := range flagArgs {
		if name, ok := flagName(a); ok && fs.Lookup(name) != nil {
			p.sources[name] = fromFlag
		}
	}
	opts := []ff.Option{ff.WithEnvVarPrefix(envPrefix)}
	var fromConfig []string
	if fs.Lookup(configFlag) != nil {
		opts = append(opts,
			ff.WithConfigFileFlag(configFlag),
			ff.WithConfigFileParser(configParser(fs, &fromConfig)))
	}
	if err := ff.Parse(fs, flagArgs, opts...); err != nil {
		var open *iofs.PathError
		switch msg := err.Error(); {
		case errors.Is(err, flag.ErrHelp):
			return nil, flag.ErrHelp
		case strings.HasPrefix(msg, "error parsing commandline arguments"):
			// The flag package's own error, wrapped in words a reader
			// does not need.
			if inner := errors.Unwrap(err); inner != nil {
				err = inner
			}
		case strings.HasPrefix(msg, "error parsing environment variables"):
			if envErr := badVariable(fresh(), p.sources); envErr != nil {
				err = envErr
			}
		case errors.As(err, &open):
			err = fmt.Errorf("--%s: %w", configFlag, err)
		}
		return nil, err
	}
	fs.VisitAll(func(f *flag.Flag) {
		if p.sources[f.Name] != "" {
			return
		}
		v, set := os.LookupEnv(envVar(f.Name))
		switch {
		case set && v != "":
			p.sources[f.Name] = fromEnv
		case set && emptyEnvSets[f.Name]:
			f.Value.Set("") // a string flag or a list: it cannot fail
			p.sources[f.Name] = fromEnv
		}
	})
	for _, name := range fromConfig {
		if p.sources[name] == "" {
			p.sources[name] = fromFile
		}
	}
	return p, nil
}

// badVariable returns the error of the first environment variable that
// cannot set its flag of fs, a flag set not parsed yet; flags given on the
// command line are left out, as ff leaves them.
func badVariable(fs *flag.FlagSet, onCommandLine map[string]string) error {
	var bad error
	fs.VisitAll(func(f *flag.Flag) {
		v := os.Getenv(envVar(f.Name))
		if bad != nil || v == "" || onCommandLine[f.Name] != "" {
			return
		}
		if err := f.Value.Set(v); err != nil {
			bad = fmt.Errorf("$%s: invalid value %q for --%s: %w", envVar(f.Name), v, f.Name, err)
		}
	})
	return bad
}

// splitArgs separates the flags of args, with their values, from the other
// arguments, keeping the order of each. A flag's value is the next argument
// unless it is given as --name=value or the flag is a boolean. An unknown
// flag goes with the flags, for the flag package to report.
func splitArgs(fs *flag.FlagSet, args []string) (flags, rest []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flags, append(rest, args[i+1:]...)
		}
		name, ok := flagName(a)
		if !ok {
			rest = append(rest, a)
			continue
		}
		flags = append(flags, a)
		if strings.Contains(a, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil || isBoolFlag(f) {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return flags, rest
}

// flagName returns the name of the flag arg gives (-name, --name or
// --name=value), and false when arg is not a flag: "-" alone is an argument.
func flagName(arg string) (string, bool) {
	if len(arg) < 2 || arg[0] != '-' {
		return "", false
	}
	name := strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-")
	name, _, _ = strings.Cut(name, "=")
	return name, true
}

// isBoolFlag reports whether f takes no value (--json rather than --json
// true), as the flag package decides it.
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// configParser returns ff's parser of a config file, whose name path
// returns. The file has one setting a line: a flag's name (without dashes)
// and its value, separated by spaces:
//
//	# lines that start with # are comments
//	listen 0.0.0.0:50051
//	tls-cert /etc/roomcast/cert.pem   # so is the rest of a line after " #"
//	metrics-listen ""                 # a value in double quotes, Go syntax
//	allow-anonymous                   # a boolean flag alone is true
//	jwt-public-key-file a.pem         # a repeatable flag, once a line
//	jwt-public-key-file b.pem
//
// Each error names the file and the line. The names of the flags it sets
// are appended to set.
func configParser(fs *flag.FlagSet, set *[]string) ff.ConfigFileParser {
	return func(r io.Reader, apply func(name, value string) error) error {
		path := fs.Lookup(configFlag).Value.String()
		sc := bufio.NewScanner(r)
		for n := 1; sc.Scan(); n++ {
			name, value, err := configLine(sc.Text())
			switch {
			case err != nil || name == "":
			case name == configFlag || name == printConfigFlag:
				err = fmt.Errorf("%s cannot be set in a config file", name)
			case fs.Lookup(name) == nil:
				err = fmt.Errorf("no flag --%s", name)
			default:
				*set = append(*set, name)
				if err = apply(name, value); err != nil {
					if inner := errors.Unwrap(err); inner != nil { // ff's words around the flag's own
						err = inner
					}
					err = fmt.Errorf("invalid value %q for --%s: %w", value, name, err)
				}
			}
			if err != nil {
				return fmt.Errorf("config file %s, line %d: %w", path, n, err)
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		return nil
	}
}

// configLine parses one line of a config file; name is "" for a blank line
// or a comment.
func configLine(line string) (name, value string, err error) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", "", nil
	}
	name = line
	if i := strings.IndexAny(line, " \t"); i >= 0 {
		name, value = line[:i], line[i:]
	}
	name = strings.TrimPrefix(strings.TrimPrefix(name, "-"), "-")
	value = strings.TrimSpace(value)
	switch {
	case strings.HasPrefix(value, `"`):
		quoted, err := strconv.QuotedPrefix(value)
		if err != nil {
			return "", "", fmt.Errorf("%s: the value %s has no closing quote, or a bad escape", name, value)
		}
		after := strings.TrimSpace(value[len(quoted):])
		if after != "" && after[0] != '#' {
			return "", "", fmt.Errorf("%s: %q follows the quoted value", name, after)
		}
		value, _ = strconv.Unquote(quoted)
	case value == "":
		value = "true" // a boolean flag alone
	default:
		if i := strings.Index(value, " #"); i >= 0 {
			value = strings.TrimSpace(value[:i])
		}
	}
	return name, value, nil
}

// writeConfig writes the flags of fs, as p says they were set, in the
// config file's format, each with where its value came from. Values that
// may be secrets are masked (see maskValue); no file a flag names is read.
func writeConfig(w io.Writer, cmd string, fs *flag.FlagSet, p *parsed) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# The configuration \"roomcast %s\" runs with, in the format of --config files.\n", cmd)
	fmt.Fprintf(bw, "# Precedence: flags > environment (%s_<FLAG>) > config file > defaults.\n", envPrefix)
	if file := fs.Lookup(configFlag).Value.String(); file != "" {
		fmt.Fprintf(bw, "# Config file: %s\n", file)
	}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == configFlag || f.Name == printConfigFlag {
			return
		}
		values := []string{f.Value.String()}
		if list, ok := f.Value.(interface{ Values() []string }); ok {
			values = list.Values()
		}
		src := p.source(f.Name)
		if src == fromEnv {
			src = "$" + envVar(f.Name)
		}
		if len(values) == 0 {
			fmt.Fprintf(bw, "# %s: none (%s)\n", f.Name, src)
			return
		}
		for _, v := range values {
			fmt.Fprintf(bw, "%s %s  # %s\n", f.Name, configValue(maskValue(f, v)), src)
		}
	})
	return bw.Flush()
}

// configValue quotes v for a config file when it would not read back as is.
func configValue(v string) string {
	if v == "" || strings.ContainsAny(v, " \t#\"") || strconv.Quote(v) != `"`+v+`"` {
		return strconv.Quote(v)
	}
	return v
}

// secretName matches the names of flags whose value may be a secret itself
// rather than the name of a file that holds one.
var secretName = regexp.MustCompile(`(?i)(^|-)(secret|token|password|passwd|pass|apikey|api-key|private-key)(-|$)`)

// masked replaces a secret's value.
const masked = "[masked]"

// maskValue returns v, the value of f, fit to print: a flag whose name says
// it holds a secret is masked unless its value is a file's name (its usage
// names a FILE, PATH or DIR); a URL's password is masked wherever it is.
func maskValue(f *flag.Flag, v string) string {
	if v == "" {
		return v
	}
	placeholder, _ := flag.UnquoteUsage(f)
	if secretName.MatchString(f.Name) && !slices.Contains([]string{"FILE", "PATH", "DIR"}, placeholder) {
		return masked
	}
	if u, err := url.Parse(v); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
	}
	return v
}
