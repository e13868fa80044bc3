package doctest

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	page := "# T\n\n```sh\n# not run by the docs test: needs a GPU\nvllm serve m\n```\n\ntext\n\n````text\n$ x\n```toml\na = 1\n```\n````\n```\nbare\n```\n"
	blocks, err := Parse(page)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 3 {
		t.Fatalf("%d blocks: %+v", len(blocks), blocks)
	}
	if b := blocks[0]; b.Lang != "sh" || b.Line != 3 || !b.Shell() || b.SkipReason() != "needs a GPU" {
		t.Errorf("block 0: %+v, skip %q", b, b.SkipReason())
	}
	if b := blocks[1]; b.Lang != "text" || len(b.Lines) != 4 || b.Lines[1] != "```toml" {
		t.Errorf("block 1 (a ```` fence holding ```): %+v", b)
	}
	if b := blocks[2]; b.Lang != "" || b.Lines[0] != "bare" {
		t.Errorf("block 2: %+v", b)
	}
	if _, err := Parse("```sh\nopen\n"); err == nil {
		t.Error("an unclosed block parses")
	}
}

func TestCommands(t *testing.T) {
	b := Block{Lang: "sh", Line: 10, Lines: []string{"# comment", "", "a --x \\", "    --y", "b &"}}
	cmds := Commands(b)
	if len(cmds) != 2 || cmds[0].Line != 13 || cmds[0].Text != "a --x     --y" || cmds[1].Text != "b &" || cmds[1].Line != 15 {
		t.Errorf("Commands = %+v", cmds)
	}
}

func TestRewrite(t *testing.T) {
	next := 40000
	ports := NewPorts(func() (int, error) { next++; return next, nil })
	tests := []struct{ in, want, wait string }{
		{"make build", ": 'make build: the test built the binaries'", ""},
		{"make test   # gofmt check", ": 'make test: the suite this test belongs to'", ""},
		{"make demo   # the whole study", "DEMO", ""},
		{"bin/vbsim --listen 127.0.0.1:8000 --speed 8 &", "bin/vbsim --listen 127.0.0.1:40001 --speed 100 &", "40001"},
		{"vbsim --policy contiguous --port 8001 &", "vbsim --policy contiguous --port 40002 --speed 100 &", "40002"},
		{"vbsim --print-config --speed 3", "vbsim --print-config --speed 3", ""},
		{"vbreplay trace.bin --target http://127.0.0.1:8000 --rates 1,5 --duration 60s --warmup 20s --drain 120s",
			"vbreplay trace.bin --target http://127.0.0.1:40001 --rates 1,5 --duration 1s --warmup 500ms --drain 5s", ""},
		{"vbreplay t.bin --upstream :8001 --rate 10 --warmup 50 # comment", "vbreplay t.bin --upstream :40002 --rate 10 --warmup 50 --duration 1s # comment", ""},
		{"vbreplay t.bin --target localhost:9000 --duration=300ms | tee x", "vbreplay t.bin --target localhost:40003 --duration=300ms | tee x", ""},
		{"vbproxy --upstream :8000 --listen 127.0.0.1:8002 --log-level debug &", "vbproxy --upstream :40001 --listen 127.0.0.1:40004 --log-level debug &", "40004"},
		{"vbbench probe --level 15s --interrupt-drain 9s x.toml", "vbbench probe --level 1s --interrupt-drain 9s x.toml", ""},
		{"vbanalyze export-trace c -o a.bin --since 2026-11-26T18:00:00Z", "vbanalyze export-trace c -o a.bin --since 2026-11-26T18:00:00Z", ""},
		{"vbsynth import azure a.csv --window 10m,20m -o azure.bin", "vbsynth import azure a.csv --window 10m,20m -o azure.bin", ""},
		// A comment after the & (docs/vbreplay.md): still waited for (the
		// next command once ran before the server listened).
		{"vbsim --listen 127.0.0.1:8003 --speed 100 &   # a server", "vbsim --listen 127.0.0.1:40005 --speed 100 &   # a server", "40005"},
	}
	for _, tt := range tests {
		got, wait, err := Rewrite(tt.in, ports, Limits{Demo: "DEMO"})
		if err != nil || got != tt.want || wait != tt.wait {
			t.Errorf("Rewrite(%q)\n = %q, wait %q, %v\nwant %q, wait %q", tt.in, got, wait, err, tt.want, tt.wait)
		}
	}
}

func TestShortenStudy(t *testing.T) {
	in := "[run]\nrates = [2, 8]\nduration = \"8s\"\nwarmup = \"2s\"\ndrain = \"10s\"\n[variants.x]\nsim_speed = 20\n"
	got := ShortenStudy(in)
	for _, want := range []string{`duration = "1s"`, `warmup = "500ms"`, `drain = "5s"`, "sim_speed = 100", "rates = [2, 8]"} {
		if !strings.Contains(got, want) {
			t.Errorf("ShortenStudy: %q lacks %q", got, want)
		}
	}
}

func TestRewriteRefusesUnknownMake(t *testing.T) {
	if _, _, err := Rewrite("make fuzz", NewPorts(nil), Limits{}); err == nil {
		t.Error("make fuzz is rewritten; want an error (the docs test would run the fuzzers)")
	}
}
