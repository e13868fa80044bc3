// Package doctest extracts the shell blocks of vbench's Markdown pages and
// turns them into scripts that run against the simulator, so that every
// command the README and docs/ show is run by `make test` and cannot drift
// from the tools.
//
// A page's fenced blocks must name their language. Blocks in sh, bash or
// shell are commands a user would type; each page's commands run in order,
// as one bash script, in a fresh directory. A block that cannot run there
// (it needs a GPU, the network, or an hour) starts with the visible line
//
//	# not run by the docs test: REASON
//
// The script differs from what the page says only in ways that keep it
// short and isolated; Rewrite lists them: fixed ports become free ones,
// durations are capped, vbsim runs fast, servers started with & are waited
// for, and `make build` is skipped (the binaries are built already).
package doctest

import (
	"bufio"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// SkipMarker starts a shell block that the docs test does not run; the
// reason follows it.
const SkipMarker = "# not run by the docs test:"

// Block is one fenced code block of a Markdown page.
type Block struct {
	// Lang is the info string's first word ("sh", "text", ...).
	Lang string
	// Line is the 1-based line of the opening fence.
	Line int
	// Lines are the block's lines, without the fences.
	Lines []string
}

// Shell reports whether the block holds commands (sh, bash, shell).
func (b Block) Shell() bool {
	switch b.Lang {
	case "sh", "bash", "shell":
		return true
	}
	return false
}

// SkipReason is the reason after SkipMarker on the block's first line, or
// "" when the block is to be run.
func (b Block) SkipReason() string {
	if len(b.Lines) == 0 {
		return ""
	}
	first := strings.TrimSpace(b.Lines[0])
	if !strings.HasPrefix(first, SkipMarker) {
		return ""
	}
	if r := strings.TrimSpace(strings.TrimPrefix(first, SkipMarker)); r != "" {
		return r
	}
	return "(no reason given)"
}

// Parse returns the fenced blocks of a Markdown page. A fence is three or
// more backticks; it closes at a line of at least as many backticks and
// nothing else, so a ```` block may show ``` blocks inside it.
func Parse(page string) ([]Block, error) {
	var blocks []Block
	var cur *Block
	fence := 0
	sc := bufio.NewScanner(strings.NewReader(page))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		ticks := len(trimmed) - len(strings.TrimLeft(trimmed, "`"))
		if cur == nil {
			if ticks >= 3 {
				fence = ticks
				lang, _, _ := strings.Cut(strings.TrimSpace(trimmed[ticks:]), " ")
				cur = &Block{Lang: lang, Line: n}
			}
			continue
		}
		if ticks >= fence && strings.TrimSpace(trimmed[ticks:]) == "" {
			blocks = append(blocks, *cur)
			cur = nil
			continue
		}
		cur.Lines = append(cur.Lines, line)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		return blocks, fmt.Errorf("line %d: the block opened here is never closed", cur.Line)
	}
	return blocks, nil
}

// Command is one logical command line of a shell block (backslash
// continuations joined), with the page line it starts on.
type Command struct {
	Line int
	Text string
}

// Commands splits a block into logical command lines, dropping blank lines
// and whole-line comments.
func Commands(b Block) []Command {
	var cmds []Command
	var cur strings.Builder
	start := 0
	for i, l := range b.Lines {
		if cur.Len() == 0 {
			t := strings.TrimSpace(l)
			if t == "" || strings.HasPrefix(t, "#") {
				continue
			}
			start = b.Line + 1 + i
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\"))
			continue
		}
		cur.WriteString(l)
		cmds = append(cmds, Command{Line: start, Text: strings.TrimSpace(cur.String())})
		cur.Reset()
	}
	if cur.Len() > 0 {
		cmds = append(cmds, Command{Line: start, Text: strings.TrimSpace(cur.String())})
	}
	return cmds
}

// Limits are the caps Rewrite applies.
type Limits struct {
	Duration time.Duration // --duration, --level (default 1s)
	Warmup   time.Duration // --warmup as a duration (default 500ms)
	Drain    time.Duration // --drain (default 5s)
	SimSpeed float64       // vbsim --speed (default 100)
	// Demo is the command `make demo` becomes: scripts/demo.sh with short
	// levels, the test's binaries and an output directory of its own.
	Demo string
}

func (l *Limits) defaults() {
	if l.Duration == 0 {
		l.Duration = time.Second
	}
	if l.Warmup == 0 {
		l.Warmup = 500 * time.Millisecond
	}
	if l.Drain == 0 {
		l.Drain = 5 * time.Second
	}
	if l.SimSpeed == 0 {
		l.SimSpeed = 100
	}
}

// Ports maps the fixed ports a page names to free ones.
type Ports struct {
	m    map[string]string
	free func() (int, error)
}

// NewPorts returns a mapping that asks free for each new port.
func NewPorts(free func() (int, error)) *Ports {
	return &Ports{m: map[string]string{}, free: free}
}

func (p *Ports) get(port string) (string, error) {
	if q, ok := p.m[port]; ok {
		return q, nil
	}
	n, err := p.free()
	if err != nil {
		return "", err
	}
	q := strconv.Itoa(n)
	p.m[port] = q
	return q, nil
}

var (
	// A port after a host or a colon: 127.0.0.1:8000, localhost:8000,
	// :8000 (not times such as 18:00:00, whose fields have two digits).
	rePort = regexp.MustCompile(`(^|[\s"'=(/]|127\.0\.0\.1|localhost|0\.0\.0\.0|\])(:)(\d{4,5})\b`)
	// --port 8000, --port=8000.
	reFlagPort = regexp.MustCompile(`(--port[ =])(\d{4,5})\b`)
	// Duration flags: --duration 60s, --level=15s.
	reDur = regexp.MustCompile(`(--(?:duration|level|drain|warmup)[ =])([0-9][0-9a-zµ.]*)`)
	// vbsim's speed.
	reSpeed = regexp.MustCompile(`\s--speed[ =][0-9.]+`)
	// The program of a command: the first word, after env assignments.
	reEnv = regexp.MustCompile(`^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*`)
	// Background servers: vbsim/vbproxy ... &.
	reListen = regexp.MustCompile(`--(?:listen|port)[ =](?:https?://)?(?:[\w.\[\]:-]*:)?(\d+)`)
)

// Program is the command's program name without its directory ("vbsim"
// for bin/vbsim), "" for an empty line.
func Program(cmd string) string {
	cmd = reEnv.ReplaceAllString(cmd, "")
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return ""
	}
	p := f[0]
	if i := strings.LastIndex(p, "/"); i >= 0 {
		p = p[i+1:]
	}
	return p
}

// Rewrite turns one documented command into the one the test runs:
//
//   - every fixed port (127.0.0.1:8000, :8000, --port 8000) becomes a free
//     port, the same one for the same number throughout the page;
//   - --duration and --level are capped at l.Duration, --drain at l.Drain,
//     --warmup (when a duration) at l.Warmup;
//   - vbreplay without --duration gets one (it would play the whole trace);
//   - vbsim runs at --speed l.SimSpeed (the simulated engine's pace does not
//     change what the command does, only how long it takes);
//   - `make build` is dropped (the binaries are on PATH and in bin/), and so
//     is `make test` (the suite that runs this test); `make demo` becomes
//     l.Demo.
//
// It returns the command and, for a server started in the background, the
// port to wait for before the next command ("" otherwise).
func Rewrite(cmd string, ports *Ports, l Limits) (string, string, error) {
	l.defaults()
	prog := Program(cmd)
	if prog == "make" {
		target := strings.Fields(strings.SplitN(cmd, "#", 2)[0])
		if len(target) == 2 {
			switch target[1] {
			case "build":
				return ": 'make build: the test built the binaries'", "", nil
			case "test":
				return ": 'make test: the suite this test belongs to'", "", nil
			case "demo":
				if l.Demo == "" {
					return "", "", fmt.Errorf("make demo: no demo command given")
				}
				return l.Demo, "", nil
			}
		}
		return "", "", fmt.Errorf("%q: the docs test knows make build, test and demo only", cmd)
	}
	var err error
	repl := func(re *regexp.Regexp, s string, f func(m []string) string) string {
		return re.ReplaceAllStringFunc(s, func(m string) string { return f(re.FindStringSubmatch(m)) })
	}
	cmd = repl(rePort, cmd, func(m []string) string {
		q, e := ports.get(m[3])
		if e != nil {
			err = e
		}
		return m[1] + m[2] + q
	})
	cmd = repl(reFlagPort, cmd, func(m []string) string {
		q, e := ports.get(m[2])
		if e != nil {
			err = e
		}
		return m[1] + q
	})
	if err != nil {
		return "", "", err
	}
	cmd = repl(reDur, cmd, func(m []string) string {
		d, e := time.ParseDuration(m[2])
		if e != nil {
			return m[0] // a count (--warmup 50) or not a duration
		}
		limit := l.Duration
		switch {
		case strings.HasPrefix(m[1], "--drain"):
			limit = l.Drain
		case strings.HasPrefix(m[1], "--warmup"):
			limit = l.Warmup
		}
		if d > limit {
			d = limit
		}
		return m[1] + d.String()
	})
	if prog == "vbreplay" && !strings.Contains(cmd, "--duration") {
		cmd = insertFlag(cmd, "--duration "+l.Duration.String())
	}
	if prog == "vbsim" && !strings.Contains(cmd, "--print-config") {
		cmd = reSpeed.ReplaceAllString(cmd, "")
		cmd = insertFlag(cmd, "--speed "+strconv.FormatFloat(l.SimSpeed, 'g', -1, 64))
	}
	wait := ""
	// A server in the background ("... &", a comment may follow) is waited for.
	if code := strings.TrimSpace(strings.SplitN(cmd, "#", 2)[0]); strings.HasSuffix(code, "&") && (prog == "vbsim" || prog == "vbproxy") {
		if m := reListen.FindStringSubmatch(cmd); m != nil {
			wait = m[1]
		}
	}
	return cmd, wait, nil
}

// insertFlag adds a flag after the program and before any redirection,
// pipe, comment or trailing &.
func insertFlag(cmd, flag string) string {
	end := len(cmd)
	for _, stop := range []string{" #", " |", " >", " 2>", " &&", " &"} {
		if i := strings.Index(cmd, stop); i >= 0 && i < end {
			end = i
		}
	}
	if strings.HasSuffix(cmd[:end], "&") {
		end--
	}
	return strings.TrimRight(cmd[:end], " ") + " " + flag + cmd[end:]
}
