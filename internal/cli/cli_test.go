package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestExitMessages(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code int
		want string
	}{
		{"vbsim", nil, ExitOK, ""},
		{"vbsim", fmt.Errorf("listen on 127.0.0.1:1: %w", errors.New("address already in use")), ExitFailure,
			"vbsim: listen on 127.0.0.1:1: address already in use\n"},
		// The library the command fronts is not named twice.
		{"vbsim", errors.New(`sim: unknown preset "x"`), ExitFailure, "vbsim: unknown preset \"x\"\n"},
		{"vbbench run", errors.New("bench: bench: study x.toml: bad"), ExitFailure, "vbbench run: study x.toml: bad\n"},
		// Another library's prefix stays: it says where the error is.
		{"vbreplay", errors.New("trace: open t.bin: no such file or directory"), ExitFailure, "vbreplay: trace: open t.bin: no such file or directory\n"},
		// errors.Join: one line each, each with the command's name.
		{"vbsim", Usagef("%w", errors.Join(errors.New("--speed 0: want > 0"), errors.New("sim: --kv-tokens -1"))), ExitUsage,
			"vbsim: --speed 0: want > 0\nvbsim: --kv-tokens -1\nRun 'vbsim --help' for usage.\n"},
		{"vbsynth", Usagef("-o OUTPUT is required"), ExitUsage, "vbsynth: -o OUTPUT is required\nRun 'vbsynth --help' for usage.\n"},
		{"vbsynth", fmt.Errorf("x: %w", context.Canceled), ExitInterrupted, "vbsynth: interrupted\n"},
		{"vbsynth", pflag.ErrHelp, ExitOK, ""},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if code := Exit(&b, tt.name, tt.err); code != tt.code || b.String() != tt.want {
			t.Errorf("Exit(%q, %v) = %d, %q; want %d, %q", tt.name, tt.err, code, b.String(), tt.code, tt.want)
		}
	}
}

func TestUsagef(t *testing.T) {
	inner := &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist}
	err := Usagef("--mix %w", inner)
	if !errors.Is(err, ErrUsage) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Usagef: errors.Is(ErrUsage) %v, errors.Is(ErrNotExist) %v; want both", errors.Is(err, ErrUsage), errors.Is(err, fs.ErrNotExist))
	}
	if got := err.Error(); got != "--mix open x: file does not exist" {
		t.Errorf("Usagef text %q: want the message alone, without \"usage:\"", got)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		t.Error("errors.As finds no *fs.PathError inside Usagef's error")
	}
}

func TestVersionRequested(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"--version"}, true},
		{[]string{"run", "study.toml", "--version"}, true},
		{[]string{"--speed", "2", "--version=true"}, true},
		{[]string{"--", "--version"}, false},
		{[]string{"--versions"}, false},
	}
	for _, tt := range tests {
		if got := VersionRequested(tt.args); got != tt.want {
			t.Errorf("VersionRequested(%q) = %v; want %v", tt.args, got, tt.want)
		}
	}
}

func TestFormatVersion(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261203072555-c06c1191b92b+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "c06c1191b92b43ec6e51977166cd7f09d5fd0cb6"}, {Key: "vcs.modified", Value: "true"}}}
	got := formatVersion("vbsim", stamped)
	for _, want := range []string{"vbsim v0.0.0-20261203072555-c06c1191b92b+dirty (", "revision c06c1191b92b, modified;", "go1.26.8"} {
		if !strings.Contains(got, want) {
			t.Errorf("formatVersion(stamped) = %q; want it to contain %q", got, want)
		}
	}
	if got := shortVersion(stamped); got != "v0.0.0-20261203072555-c06c1191b92b+dirty" {
		t.Errorf("shortVersion(stamped) = %q", got)
	}
	clean := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abcdef0123456789"}, {Key: "vcs.modified", Value: "false"}}}
	if got := formatVersion("vbproxy", clean); !strings.Contains(got, "vbproxy (devel) (revision abcdef012345;") || strings.Contains(got, "modified") {
		t.Errorf("formatVersion(clean) = %q", got)
	}
	if got := shortVersion(clean); got != "abcdef012345" {
		t.Errorf("shortVersion(clean) = %q", got)
	}
	bare := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}
	if got := formatVersion("vbsynth", bare); !strings.Contains(got, "vbsynth (devel) (no VCS revision") {
		t.Errorf("formatVersion(bare) = %q", got)
	}
	if got := Version("vbsim"); !strings.HasPrefix(got, "vbsim ") {
		t.Errorf("Version = %q", got)
	}
}

func TestHelpListsVersionWithoutBoolNoise(t *testing.T) {
	var b bytes.Buffer
	fs := NewFlagSet("vbx", "vbx [flags]", &b)
	fs.Bool("quiet", false, "no progress")
	fs.Duration("duration", 0, "how long")
	if err := Parse(fs, []string{"--help"}); !errors.Is(err, pflag.ErrHelp) {
		t.Fatalf("Parse(--help) = %v", err)
	}
	out := b.String()
	if strings.Contains(out, "[=true|false]") || !strings.Contains(out, "--version") || !strings.Contains(out, "--quiet") {
		t.Errorf("help:\n%s", out)
	}
	// Columns stay aligned: every usage text starts in the same column.
	col := -1
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "      --") {
			continue
		}
		i := 8 + strings.Index(line[8:], "  ") // after "      --name type"
		j := strings.IndexFunc(line[i:], func(r rune) bool { return r != ' ' }) + i
		if col >= 0 && j != col {
			t.Errorf("help columns differ (%d vs %d):\n%s", j, col, out)
		}
		col = j
	}
}
