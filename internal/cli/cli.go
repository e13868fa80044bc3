// Package cli holds what every vbench command shares: the main wrapper that
// turns a run function into an exit code with signal handling and --version,
// exit codes, error printing, and parsers for repeated k=v flags.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
)

// Exit codes shared by every command.
const (
	ExitOK      = 0
	ExitFailure = 1 // the job failed (bad input, server errors, ...)
	ExitUsage   = 2 // bad flags or arguments
	// ExitDamaged: the job ran to its end, but some input was damaged; the
	// output covers what could be read and the message says what is lost.
	ExitDamaged     = 3
	ExitInterrupted = 130
)

// ErrDamaged marks errors about damaged input that did not stop the job;
// Exit maps it to ExitDamaged.
var ErrDamaged = errors.New("damaged input")

// Damaged wraps err (which says what is lost) so Exit returns ExitDamaged.
func Damaged(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrDamaged, err)
}

// ErrUsage marks errors caused by how the command was called; Exit maps it
// to ExitUsage.
var ErrUsage = errors.New("usage")

// usageError is an error caused by how the command was called: it says what
// was wrong (not "usage:") and matches ErrUsage.
type usageError struct{ err error }

func (e usageError) Error() string        { return e.err.Error() }
func (e usageError) Unwrap() []error      { return []error{ErrUsage, e.err} }
func (e usageError) Is(target error) bool { return target == ErrUsage }

// Usagef returns an error that matches ErrUsage with errors.Is. Its text is
// the formatted message alone; %w in format wraps as fmt.Errorf does.
func Usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// RunFunc is the body of a command: it parses args and does the job.
type RunFunc func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

// Main runs the command name: with --version among its arguments it prints
// Version(name) on stdout and returns ExitOK; otherwise it runs fn with a
// context cancelled on the first SIGINT/SIGTERM and returns fn's exit code.
// A command that wants to act on a second signal (vbproxy cuts its drain
// short) registers for it itself with signal.Notify once ctx is done.
func Main(name string, fn RunFunc) int {
	if VersionRequested(os.Args[1:]) {
		fmt.Fprintln(os.Stdout, Version(name))
		return ExitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return fn(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}

// VersionRequested reports whether args ask for --version: the flag before
// any "--" terminator, wherever it stands (after a subcommand, too).
func VersionRequested(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--version", "--version=true":
			return true
		}
	}
	return false
}

// Exit prints err (if any) on stderr and maps it to an exit code. Each line
// of the message starts with "name: " (errors.Join gives one line per
// error); a leading "lib: " that only repeats the command's own library
// ("vbsim: sim: ...", "vbbench run: bench: ...") is left out, and a usage
// error ends with a pointer to --help.
func Exit(stderr io.Writer, name string, err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, pflag.ErrHelp):
		return ExitOK
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "%s: interrupted\n", name)
		return ExitInterrupted
	}
	io.WriteString(stderr, Message(name, err))
	switch {
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", name)
		return ExitUsage
	case errors.Is(err, ErrDamaged):
		return ExitDamaged
	}
	return ExitFailure
}

// Message formats err as Exit prints it: every line prefixed with "name: ",
// a redundant leading library prefix dropped, ending in a newline.
func Message(name string, err error) string {
	// "vbsim" → "sim: ", "vbbench run" → "bench: ": the library the
	// command fronts.
	cmd, _, _ := strings.Cut(name, " ")
	libPrefix := strings.TrimPrefix(cmd, "vb") + ": "
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(err.Error(), "\n"), "\n") {
		if strings.HasPrefix(cmd, "vb") {
			for strings.HasPrefix(line, libPrefix) {
				line = strings.TrimPrefix(line, libPrefix)
			}
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// NewFlagSet returns a pflag set that reports errors instead of exiting and
// prints usage to stderr. Parse adds --version (which Main handles before
// any flag is parsed) as the last flag, so that --help lists it.
func NewFlagSet(name, usage string, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n%s", usage, FlagUsages(fs))
	}
	return fs
}

// FlagUsages is fs.FlagUsages without the "[=true|false]" pflag appends to
// every boolean flag (a bare --flag sets it), columns kept aligned.
func FlagUsages(fs *pflag.FlagSet) string {
	const noise = "[=true|false]"
	return strings.ReplaceAll(fs.FlagUsages(), noise, strings.Repeat(" ", len(noise)))
}

// Parse parses args and wraps flag errors in ErrUsage.
func Parse(fs *pflag.FlagSet, args []string) error {
	if fs.Lookup("version") == nil {
		fs.Bool("version", false, "print the version (module version, VCS revision, modified flag) and exit")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return Usagef("%v", err)
	}
	return nil
}

// ParseKV parses repeated "k=v" values (from a StringArray flag) into a map.
func ParseKV(flag string, values []string) (map[string]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(values))
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(part, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				return nil, Usagef("--%s %q: want key=value", flag, part)
			}
			m[k] = strings.TrimSpace(val)
		}
	}
	return m, nil
}

// SortedKeys returns the keys of m in order.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
