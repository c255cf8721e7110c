package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" { // the client process: this test binary again
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// A small run goes through every phase with a real server and client
// process, and reports per connection and per stream.
func TestMeasuresASmallShape(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run([]string{"-connections", "3", "-streams", "2", "-rooms", "2", "-settle", "0"}, &out, &errs); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, errs.String())
	}
	for _, want := range []string{"3 connections × 2 streams", "per connection, no stream:", "per stream, beyond its connection:", "per stream, connections included:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRefusesAnEmptyShape(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run([]string{"-streams", "0"}, &out, &errs); code != 2 {
		t.Errorf("exit status %d, want 2 (usage)", code)
	}
}
