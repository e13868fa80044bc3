// Package testenv holds the rules vbench's tests share about where they
// run.
//
// Slow tests: a test that skips itself under -short (testing.Short()) is a
// slow test. `make test` passes -short and leaves it out; `make slow` (a
// separate CI step with its own time budget) runs exactly those tests:
// internal/testenv/slowtests lists them from the source, so no list needs
// keeping by hand. Put a test there when it runs for many seconds or
// asserts a timing goal under load; unit tests assert behaviour.
//
// Missing tools: a test that needs something a developer may not have
// installed (the OpenAI Node SDK, node itself) calls Missing, which skips
// on a developer's machine but fails in CI, where .ci/run installs
// everything and a skip would hide a broken install step.
package testenv

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// CI reports whether the tests run in CI: the CI environment variable is
// set to a true value (CI=true, as .ci/run's caller sets it, or CI=1).
func CI() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

// Missing ends t because something it needs is not installed: a skip with
// the message on a developer's machine, a failure in CI (see CI).
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatalf("%s (CI=%s: .ci/run must install it, so this fails instead of skipping)", msg, os.Getenv("CI"))
	}
	t.Skip(msg)
}
