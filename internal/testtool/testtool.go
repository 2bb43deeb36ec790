// Package testtool finds the outside programs tests drive (dovecot,
// mbsync, python3, promtool, ...). Where one is missing a test fails under
// CI=true, so a CI run never passes by skipping, and skips elsewhere;
// either way the message names the command that installs it.
//
// It is for tests and the bench only, and imports nothing of this module.
package testtool

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Need returns the path of tool, installed by the Debian package pkg.
func Need(tb testing.TB, tool, pkg string) string {
	tb.Helper()
	path, err := exec.LookPath(tool)
	Require(tb, err, "apt-get install -y "+pkg)
	return path
}

// Require stops the test when err (a missing prerequisite) is not nil:
// a failure under CI=true, a skip elsewhere. install is the command that
// provides what is missing.
func Require(tb testing.TB, err error, install string) {
	tb.Helper()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("%v; install it with: %s", err, install)
	if os.Getenv("CI") == "true" {
		tb.Fatalf("%s", msg)
	}
	tb.Skipf("%s", msg)
}

// Long marks a test too slow for a quick run: skipped under -short, except
// under CI=true, where every test must run and -short fails it instead.
// what says what makes it slow.
func Long(tb testing.TB, what string) {
	tb.Helper()
	if !testing.Short() {
		return
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("%s: not skipped in CI; run without -short", what)
	}
	tb.Skipf("%s: skipped in -short mode", what)
}
