package synth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/model/bpe"
	"github.com/sugarme/tokenizer/pretrained"
)

// Tokenizer counts tokens with a Hugging Face tokenizer.json (BPE,
// WordPiece, Unigram; byte-level and Metaspace pre-tokenizers), through the
// pure-Go github.com/sugarme/tokenizer. Counts include the special tokens
// the file's post-processor adds (a BOS token for OPT and Llama), as
// `len(tokenizer(text).input_ids)` does in vLLM's benchmark.
//
// A Tokenizer is not safe for concurrent use.
type Tokenizer struct {
	tk   *tokenizer.Tokenizer
	data []byte // the file, to make per-goroutine copies
	// sentinel is the id given to text a BPE vocabulary without an unknown
	// token cannot encode (-1: none; see guardBPE).
	sentinel int
	// Name is the file's base name and the first 12 hex digits of its
	// SHA-256, e.g. "tokenizer.json@3f1a…", recorded in trace headers.
	Name string
}

// LoadTokenizer reads a tokenizer.json file.
func LoadTokenizer(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("synth: tokenizer: %w", err)
	}
	tk, err := loadTokenizer(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("synth: tokenizer %s: %w (want a Hugging Face tokenizer.json)", path, err)
	}
	sum := sha256.Sum256(data)
	return &Tokenizer{tk: tk, data: data, sentinel: guardBPE(tk), Name: filepath.Base(path) + "@" + hex.EncodeToString(sum[:6])}, nil
}

// clone returns an independent copy for another goroutine.
func (t *Tokenizer) clone() (*Tokenizer, error) {
	tk, err := loadTokenizer(bytes.NewReader(t.data))
	if err != nil {
		return nil, err
	}
	return &Tokenizer{tk: tk, data: t.data, sentinel: guardBPE(tk), Name: t.Name}, nil
}

// guardBPE gives a BPE model without an unknown token one that no text
// holds, and returns its id (-1 when the model needs none). The library
// otherwise prints "cannot find 'h' in the vocab." on stdout and panics on
// the first character outside the vocabulary; with the sentinel, Encode
// finds the id and returns an error instead. Byte-level vocabularies
// (GPT-2, Llama 3) cover every byte and never produce it.
func guardBPE(tk *tokenizer.Tokenizer) int {
	m, ok := tk.GetModel().(*bpe.BPE)
	if !ok || m.UnkToken != nil || m.Vocab == nil {
		return -1
	}
	id := 0
	for _, v := range *m.Vocab {
		id = max(id, v+1)
	}
	name := "\x00vbench:not-in-vocabulary"
	(*m.Vocab)[name] = id
	if m.VocabR != nil {
		(*m.VocabR)[id] = name
	}
	m.UnkToken = &name
	return id
}

// loadTokenizer guards against panics inside the library on unexpected
// files: a bad tokenizer.json must end in an error, not a stack trace.
func loadTokenizer(r io.Reader) (tk *tokenizer.Tokenizer, err error) {
	defer func() {
		if p := recover(); p != nil {
			tk, err = nil, fmt.Errorf("unsupported or malformed file: %v", p)
		}
	}()
	return pretrained.FromReader(r)
}

// Count returns the number of tokens of text, special tokens included.
func (t *Tokenizer) Count(text string) (n int, err error) {
	ids, err := t.Encode(text)
	return len(ids), err
}

// Encode returns the token ids of text, special tokens included.
func (t *Tokenizer) Encode(text string) (ids []int, err error) {
	defer func() {
		if p := recover(); p != nil {
			ids, err = nil, fmt.Errorf("synth: tokenizer %s: %v", t.Name, p)
		}
	}()
	enc, err := t.tk.EncodeSingle(text, true)
	if err != nil {
		return nil, fmt.Errorf("synth: tokenizer %s: %w", t.Name, err)
	}
	if t.sentinel >= 0 {
		for i, id := range enc.Ids {
			if id == t.sentinel {
				what := "a character of the text"
				if i < len(enc.Offsets) && len(enc.Offsets[i]) == 2 && 0 <= enc.Offsets[i][0] && enc.Offsets[i][0] < enc.Offsets[i][1] && enc.Offsets[i][1] <= len(text) {
					what = strconv.Quote(text[enc.Offsets[i][0]:enc.Offsets[i][1]])
				}
				return nil, fmt.Errorf("synth: tokenizer %s: %s is not in its vocabulary, which has no unknown token", t.Name, what)
			}
		}
	}
	return enc.Ids, nil
}

// EstimateTokens is the length estimate used without a tokenizer: one token
// per four characters, rounded up (within about 10% of BPE counts for
// English prose; see docs/vbsynth.md).
func EstimateTokens(text string) int32 {
	return int32((utf8.RuneCountInString(text) + 3) / 4)
}

// Measure fills the token counts of every record: exact counts with tok,
// EstimateTokens without it. Large datasets are tokenized by one tokenizer
// copy per CPU (the library is not safe for concurrent use).
func Measure(ds *Dataset, tok *Tokenizer) error {
	recs := ds.Records
	if tok == nil {
		for i := range recs {
			recs[i].InputTokens, recs[i].OutputTokens = EstimateTokens(recs[i].Prompt), EstimateTokens(recs[i].Output)
		}
		return nil
	}
	workers := min(runtime.GOMAXPROCS(0), len(recs)/500+1)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		t := tok
		if w > 0 {
			var err error
			if t, err = tok.clone(); err != nil {
				return fmt.Errorf("synth: tokenizer %s: %w", tok.Name, err)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Worker w takes records w, w+workers, ...; the first error by
			// record order wins below.
			for i := w; i < len(recs); i += workers {
				r := &recs[i]
				in, err := t.Count(r.Prompt)
				if err == nil {
					var out int
					out, err = t.Count(r.Output)
					r.InputTokens, r.OutputTokens = int32(min(in, 1<<30)), int32(min(out, 1<<30))
				}
				if err != nil {
					errs[w] = fmt.Errorf("record %s: %w", r.ID, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Filter keeps the requests a benchmark can use, like vLLM's ShareGPT
// sampler: both lengths at least MinTokens, the prompt at most MaxInput
// tokens and prompt plus output at most MaxTotal. A zero maximum disables
// that bound.
type Filter struct {
	MinTokens int32
	MaxInput  int32
	MaxTotal  int32
}

// DefaultFilter is vLLM's: min 4 tokens, prompt ≤ 1024, prompt+output ≤ 2048.
func DefaultFilter() Filter { return Filter{MinTokens: 4, MaxInput: 1024, MaxTotal: 2048} }

// Keep reports whether a request of in prompt and out output tokens passes.
func (f Filter) Keep(in, out int32) bool {
	switch {
	case in < f.MinTokens || out < f.MinTokens:
		return false
	case f.MaxInput > 0 && in > f.MaxInput:
		return false
	case f.MaxTotal > 0 && int64(in)+int64(out) > int64(f.MaxTotal):
		return false
	}
	return true
}

// Validate reports an impossible filter.
func (f Filter) Validate() error {
	switch {
	case f.MinTokens < 0 || f.MaxInput < 0 || f.MaxTotal < 0:
		return fmt.Errorf("synth: filter bounds must not be negative (min %d, max input %d, max total %d)", f.MinTokens, f.MaxInput, f.MaxTotal)
	case f.MaxInput > 0 && f.MaxInput < f.MinTokens:
		return fmt.Errorf("synth: --max-input %d is below --min-tokens %d", f.MaxInput, f.MinTokens)
	case f.MaxTotal > 0 && f.MaxTotal < 2*f.MinTokens:
		return fmt.Errorf("synth: --max-total %d is below twice --min-tokens %d", f.MaxTotal, f.MinTokens)
	}
	return nil
}

func (f Filter) String() string {
	return fmt.Sprintf("min=%d,max_input=%d,max_total=%d", f.MinTokens, f.MaxInput, f.MaxTotal)
}
