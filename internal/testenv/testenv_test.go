package testenv

import (
	"fmt"
	"strings"
	"testing"
)

func TestCI(t *testing.T) {
	for _, tt := range []struct {
		v    string
		want bool
	}{{"true", true}, {"1", true}, {"TRUE", true}, {"false", false}, {"0", false}, {"", false}, {"yes", false}} {
		t.Setenv("CI", tt.v)
		if got := CI(); got != tt.want {
			t.Errorf("CI=%q: CI() = %v; want %v", tt.v, got, tt.want)
		}
	}
}

// TestMissing runs Missing in a subtest and checks that it skips outside
// CI and fails in CI.
func TestMissing(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		// A fake testing.TB records what Missing did without ending this test.
		rec := &recorder{}
		func() {
			defer func() { recover() }() // Fatalf and Skip end the goroutine's test; the fake panics instead
			Missing(rec, "the %s is not installed", "thing")
		}()
		if ci == "" && (!rec.skipped || rec.failed) {
			t.Errorf("CI unset: skipped %v failed %v; want a skip", rec.skipped, rec.failed)
		}
		if ci == "true" && (!rec.failed || rec.skipped) {
			t.Errorf("CI=true: skipped %v failed %v; want a failure", rec.skipped, rec.failed)
		}
		if rec.msg == "" || !strings.Contains(rec.msg, "the thing is not installed") {
			t.Errorf("message %q; want the caller's", rec.msg)
		}
	}
}

type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper() {}
func (r *recorder) Skip(args ...any) {
	r.skipped, r.msg = true, args[0].(string)
	panic("skip")
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	r.msg = fmt.Sprintf(format, args...)
	panic("fatal")
}
