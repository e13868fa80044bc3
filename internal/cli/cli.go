// Package cli holds what every vbench command shares: the main wrapper that
// turns a run function into an exit code with signal handling, exit codes,
// and parsers for repeated k=v flags.
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

// Usagef returns an error wrapping ErrUsage.
func Usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// RunFunc is the body of a command: it parses args and does the job.
type RunFunc func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

// Main runs fn with a context cancelled on the first SIGINT/SIGTERM and
// returns its exit code. A second signal is delivered to the context
// returned by SecondSignal (commands that flush on shutdown use it to hurry).
func Main(fn RunFunc) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return fn(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}

// Exit prints err (if any) as "name: err" and maps it to an exit code.
func Exit(stderr io.Writer, name string, err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, pflag.ErrHelp):
		return ExitOK
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", name, err, name)
		return ExitUsage
	case errors.Is(err, ErrDamaged):
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return ExitDamaged
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "%s: interrupted\n", name)
		return ExitInterrupted
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return ExitFailure
	}
}

// NewFlagSet returns a pflag set that reports errors instead of exiting and
// prints usage to stderr.
func NewFlagSet(name, usage string, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n%s", usage, fs.FlagUsages())
	}
	return fs
}

// Parse parses args and wraps flag errors in ErrUsage.
func Parse(fs *pflag.FlagSet, args []string) error {
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
