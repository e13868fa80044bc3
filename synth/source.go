package synth

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
)

// item is one drawable request shape: lengths and, for datasets with text,
// the prompt.
type item struct {
	in, out int32
	prompt  string // empty for profiles
	row     string
}

// pool draws items without replacement, reshuffling after each pass, so a
// trace shorter than its dataset never repeats a prompt (as vLLM's sampler)
// and a longer one cycles through all of it.
type pool struct {
	name    string
	text    bool
	items   []item
	order   []int32
	pos     int
	exact   bool   // lengths from a tokenizer (or a profile), not estimated
	details string // provenance for headers and stats
}

func newPool(name string, items []item, text bool) *pool {
	p := &pool{name: name, items: items, text: text, order: make([]int32, len(items))}
	for i := range p.order {
		p.order[i] = int32(i)
	}
	return p
}

func (p *pool) next(r *rand.Rand) *item {
	n := len(p.order)
	if p.pos == n {
		p.pos = 0
	}
	j := p.pos + r.IntN(n-p.pos)
	p.order[p.pos], p.order[j] = p.order[j], p.order[p.pos]
	p.pos++
	return &p.items[p.order[p.pos-1]]
}

// Loader turns a --dataset value into a pool. It holds what loading needs:
// the tokenizer, the filter, the hub client and where to print progress.
type Loader struct {
	Tokenizer *Tokenizer
	Filter    Filter
	Hub       *Hub
	// BaseDir resolves relative file paths (a mix file's directory); "" is
	// the working directory.
	BaseDir string
}

// DatasetSpec describes how a --dataset value is read:
//
//	sharegpt, alpaca          embedded length profile (no text, no network)
//	hf:sharegpt, hf:alpaca    the well-known hub file (see KnownHubDatasets)
//	hf:ORG/NAME/PATH/IN/REPO  any file of a hub dataset repository
//	PATH                      a local ShareGPT or Alpaca JSON / JSON Lines file
func (l *Loader) load(ctx context.Context, spec string) (*pool, error) {
	spec = strings.TrimSpace(spec)
	if p, err := BuiltinProfile(spec); err == nil {
		items := make([]item, 0, len(p.Pairs))
		for i, q := range p.Pairs {
			if l.Filter.Keep(q.In, q.Out) {
				items = append(items, item{in: q.In, out: q.Out, row: fmt.Sprint(i)})
			}
		}
		if len(items) == 0 {
			return nil, fmt.Errorf("synth: profile %s: no pair passes the filter %s", spec, l.Filter)
		}
		pl := newPool(p.Name, items, false)
		pl.exact = true
		pl.details = "profile " + p.Name + " (" + p.Tokenizer + ")"
		return pl, nil
	}
	var ds *Dataset
	var err error
	name := spec
	if rest, ok := strings.CutPrefix(spec, "hf:"); ok {
		hub := l.Hub
		if hub == nil {
			hub = HubFromEnv(nil)
		}
		ref, err := ParseHubRef(rest)
		if err != nil {
			return nil, err
		}
		path, err := hub.Fetch(ctx, ref)
		if err != nil {
			return nil, err
		}
		if ds, err = LoadDatasetFile(path, ref.Format); err != nil {
			return nil, err
		}
		ds.Name = "hf:" + ref.String()
	} else {
		path := spec
		if l.BaseDir != "" && !strings.HasPrefix(path, "/") {
			if _, err := os.Stat(path); err != nil {
				path = l.BaseDir + "/" + path
			}
		}
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("synth: dataset %q is neither an embedded profile (%s), hf:ID, nor a readable file: %w", spec, strings.Join(Profiles(), ", "), err)
		}
		if ds, err = LoadDatasetFile(path, ""); err != nil {
			return nil, err
		}
	}
	name = ds.Name
	if err = Measure(ds, l.Tokenizer); err != nil {
		return nil, fmt.Errorf("synth: %s: %w", name, err)
	}
	items := make([]item, 0, len(ds.Records))
	for _, r := range ds.Records {
		if l.Filter.Keep(r.InputTokens, r.OutputTokens) {
			items = append(items, item{in: r.InputTokens, out: r.OutputTokens, prompt: r.Prompt, row: r.ID})
		}
	}
	switch {
	case len(ds.Records) == 0 && ds.Format == FormatShareGPT:
		return nil, fmt.Errorf("synth: %s: none of %d conversations has a human turn followed by a model turn (prompt-only files cannot give output lengths)", name, ds.Total)
	case len(ds.Records) == 0:
		return nil, fmt.Errorf("synth: %s: no records", name)
	case len(items) == 0:
		return nil, fmt.Errorf("synth: %s: none of the %d records passes the filter %s (see --min-tokens, --max-input, --max-total)", name, len(ds.Records), l.Filter)
	}
	pl := newPool(name, items, true)
	pl.exact = l.Tokenizer != nil
	how := "lengths estimated as chars/4 (pass --tokenizer for exact counts)"
	if pl.exact {
		how = "lengths from " + l.Tokenizer.Name
	}
	pl.details = fmt.Sprintf("%s: %d of %d records kept (%d without a prompt/answer pair, filter %s); %s", name, len(items), ds.Total, ds.Skipped, l.Filter, how)
	return pl, nil
}
