package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vbench/vbench/internal/cli"
	"github.com/vbench/vbench/trace"
)

func runT(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestSynthesizeInspectConvert(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.bin"), filepath.Join(dir, "b.bin")
	for _, p := range []string{a, b} {
		if code, _, errs := runT("--dataset", "sharegpt", "--requests", "300", "--burstiness", "0.5", "--seed", "3", "-o", p); code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
	}
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ba, bb) {
		t.Fatal("same flags, different bytes")
	}
	if code, _, errs := runT("--requests", "3", "--out", filepath.Join(dir, "alias.bin")); code != 0 {
		t.Fatalf("--out alias: %s", errs)
	}
	if _, _, errs := runT("--requests", "3", "--max-total", "8192", "-q", "-o", filepath.Join(dir, "loose.bin")); !strings.Contains(errs, "only holds requests within vLLM's filter") {
		t.Errorf("no note about a looser filter on a profile: %q", errs)
	}
	code, out, errs := runT("inspect", a)
	if code != 0 {
		t.Fatalf("inspect exit %d: %s", code, errs)
	}
	for _, want := range []string{"count       300", "arrival     gamma (burstiness 0.5)", "input tok   mean", "p99", "CV", "seed        3", "created     1970-01-01T00:00:03Z"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	j, back := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "back.bin")
	if code, _, errs := runT("convert", a, j); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := runT("convert", j, back); code != 0 {
		t.Fatal(errs)
	}
	bback, _ := os.ReadFile(back)
	if !bytes.Equal(ba, bback) {
		t.Error("bin -> jsonl -> bin is not byte-identical")
	}
}

func TestMixAndStats(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.jsonl")
	if code, _, errs := runT("--mix", "../../examples/mix.json", "--span", "2m", "--endpoint", "chat", "-o", p); code != 0 {
		t.Fatal(errs)
	}
	h, reqs, err := trace.ReadFile(p)
	if err != nil || len(reqs) < 60 || !strings.Contains(h.Dataset, "alpaca:0.3") || reqs[0].Endpoint != trace.EndpointChat {
		t.Fatalf("%v %d %+v", err, len(reqs), h)
	}
	code, out, errs := runT("stats", "alpaca")
	if code != 0 || !strings.Contains(out, "input tok   mean 19.") || !strings.Contains(out, "output") {
		t.Fatalf("stats: %d %s %s", code, out, errs)
	}
	code, out, errs = runT("stats", "../../synth/testdata/alpaca_small.json", "--tokenizer", "../../synth/testdata/tiny-tokenizer.json", "--min-tokens", "1")
	if code != 0 || !strings.Contains(out, "lengths from tiny-tokenizer.json@") {
		t.Fatalf("stats with tokenizer: %d %s %s", code, out, errs)
	}
}

func TestImport(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mc.bin")
	code, _, errs := runT("import", "mooncake", "../../synth/importer/testdata/mooncake.jsonl", "-o", p, "--speed", "2", "--window", "0s,2s")
	if code != 0 {
		t.Fatal(errs)
	}
	h, reqs, err := trace.ReadFile(p)
	if err != nil || len(reqs) != 3 || h.Arrival != trace.ArrivalRecorded || reqs[2].Offset.Seconds() != 0.5 {
		t.Fatalf("%v %+v %d", err, h, len(reqs))
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--requests", "5"}, cli.ExitUsage, "-o OUTPUT is required"},
		{[]string{"--requests", "5", "--span", "1m", "-o", dir + "/x.bin"}, cli.ExitUsage, "not both"},
		{[]string{"--burstiness", "0", "-o", dir + "/x.bin"}, cli.ExitUsage, "burstiness"},
		{[]string{"--prompt", "tokens", "--endpoint", "chat", "-o", dir + "/x.bin"}, cli.ExitUsage, "token ids"},
		{[]string{"--endpoint", "embeddings", "-o", dir + "/x.bin"}, cli.ExitUsage, "--endpoint"},
		{[]string{"--dataset", "nope.json", "-o", dir + "/x.bin"}, cli.ExitFailure, "neither an embedded profile"},
		{[]string{"--mix", "../../examples/mix.json", "--dataset", "alpaca", "-o", dir + "/x.bin"}, cli.ExitUsage, "not both"},
		{[]string{"--token-range", "9", "-o", dir + "/x.bin"}, cli.ExitUsage, "--token-range"},
		{[]string{"--created", "yesterday", "-o", dir + "/x.bin"}, cli.ExitUsage, "--created"},
		{[]string{"stray", "-o", dir + "/x.bin"}, cli.ExitUsage, "unexpected argument"},
		{[]string{"inspect"}, cli.ExitUsage, "one trace file"},
		{[]string{"inspect", "../../synth/testdata/alpaca_small.json"}, cli.ExitFailure, "not a trace"},
		{[]string{"convert", "a"}, cli.ExitUsage, "IN and OUT"},
		{[]string{"import", "csv", "f", "-o", "x"}, cli.ExitUsage, "unknown format"},
		{[]string{"import", "azure", "f"}, cli.ExitUsage, "-o OUTPUT"},
		{[]string{"import", "azure", "f", "-o", "x", "--window", "5m"}, cli.ExitUsage, "--window"},
		{[]string{"import", "azure", "f", "-o", "x", "--speed", "2", "--rate", "3"}, cli.ExitUsage, "not both"},
		{[]string{"import", "azure", dir + "/missing.csv", "-o", dir + "/x.bin"}, cli.ExitFailure, "no such file"},
		{[]string{"--tokenizer", dir + "/none.json", "-o", dir + "/x.bin"}, cli.ExitFailure, "tokenizer"},
	} {
		code, _, errs := runT(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
		if strings.Contains(errs, "goroutine") || strings.Contains(errs, "panic") {
			t.Errorf("%v: stack trace in %q", tc.args, errs)
		}
	}
	if code, out, _ := runT("help"); code != 0 || !strings.Contains(out, "vbsynth import FORMAT") {
		t.Errorf("help: %d %s", code, out)
	}
}
