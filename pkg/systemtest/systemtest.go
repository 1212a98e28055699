// Package systemtest is the one rule for tests that need root, a daemon or
// an external tool: without them such a test skips with its reason, but
// when REGENT_SYSTEM_TESTS=1 (set by .ci/run) a skip is a failure, so CI
// never passes a system test that did not run.
package systemtest

import (
	"fmt"
	"os"
	"testing"
)

// Env is the environment variable that makes system tests mandatory.
const Env = "REGENT_SYSTEM_TESTS"

// Required reports whether system tests must run.
func Required() bool { return os.Getenv(Env) == "1" }

// Skip skips t with the reason, or fails it when system tests are
// required.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s; %s=1 makes this a failure", msg, Env)
	}
	t.Skip(msg)
}
