package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

var versionCmd = &command{
	name:    "version",
	summary: "print the version of roomcast and what it was built from",
	detail: `
Print roomcast's module version, the Go version that built it, and the
commit it was built from (with "modified" when the working tree had
uncommitted changes), from the information the go command records in the
binary. go build records the commit; go run and -buildvcs=false do not.`,
	maxArgs: 0,
	setup: func(*flag.FlagSet) runFunc {
		return func(_ context.Context, _ []string, stdout, stderr io.Writer) int {
			bi, ok := debug.ReadBuildInfo()
			if !ok {
				fmt.Fprintln(stderr, "roomcast version: this binary carries no build information")
				return exitFail
			}
			fmt.Fprint(stdout, versionText(bi))
			return exitOK
		}
	},
}

// versionText describes bi: the main module's version, the Go version and
// platform, and the commit, when the go command recorded it.
func versionText(bi *debug.BuildInfo) string {
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	var b strings.Builder
	fmt.Fprintf(&b, "roomcast %s\n", bi.Main.Version)
	fmt.Fprintf(&b, "module   %s\n", bi.Main.Path)
	fmt.Fprintf(&b, "go       %s %s/%s\n", bi.GoVersion, settings["GOOS"], settings["GOARCH"])
	rev := settings["vcs.revision"]
	if rev == "" {
		fmt.Fprintf(&b, "commit   unknown: built without version control information (go run, or -buildvcs=false)\n")
		return b.String()
	}
	if settings["vcs.modified"] == "true" {
		rev += " (modified)"
	}
	fmt.Fprintf(&b, "commit   %s\n", rev)
	if t := settings["vcs.time"]; t != "" {
		fmt.Fprintf(&b, "time     %s\n", t)
	}
	return b.String()
}
