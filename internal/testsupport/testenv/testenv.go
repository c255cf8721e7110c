// Package testenv says what a test may assume of the machine it runs on:
// under CI every tool the tests need is installed (.ci/run installs it), so
// a missing one fails the test there; elsewhere it skips the test loudly,
// saying what to install.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// InCI reports whether the tests run under CI (CI set, and not to false or
// 0), where a missing tool is a failure rather than a reason to skip.
func InCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// SkipOrFail skips t, saying why and what to install, or under CI fails
// it. go test prints "ok" for a package whose tests all skipped and shows
// why only with -v, so the message starts with words that stand out there.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI is set, so this fails instead of skipping)", msg)
	}
	t.Skip("SKIPPED, NOT RUN: " + msg)
}
