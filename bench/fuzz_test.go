package bench

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseStudy: any text gives a study or an error, never a panic.
func FuzzParseStudy(f *testing.F) {
	f.Add(minimalStudy)
	for _, p := range []string{"../examples/demo.toml", "../examples/dense-4090.toml", "../examples/moe-h100.toml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("name = 1\n[variants.x]\npreset = 3\n")
	f.Add("[[models]]\nvariants = [\"x\"]\n[variants.x]\nkind = \"exec\"\ncommand = []\n")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseStudy(text)
		if err == nil {
			if _, err := s.Resolve(); err != nil {
				t.Errorf("a valid study does not resolve: %v", err)
			}
		}
	})
}

// FuzzParseConfigJSON: any bytes give an architecture or an error, and an
// accepted architecture gives finite sizes.
func FuzzParseConfigJSON(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.json")
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"hidden_size":4096,"num_attention_heads":32,"num_hidden_layers":32,"vocab_size":32000,"intermediate_size":11008}`))
	f.Add([]byte(`{"text_config":{"hidden_size":8,"num_attention_heads":2,"num_hidden_layers":1,"vocab_size":10},"quantization_config":{"quant_method":"fp8"}}`))
	f.Add([]byte(`{"hidden_size":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseConfigJSON(b)
		if err != nil {
			return
		}
		w := a.WeightBytes("")
		if math.IsNaN(w) || w < 0 {
			t.Errorf("weights %v for %+v", w, a)
		}
	})
}
