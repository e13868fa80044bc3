package synth

import (
	"os"
	"strings"
	"testing"
)

func FuzzParseMix(f *testing.F) {
	b, err := os.ReadFile("../examples/mix.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"components":[{"dataset":"alpaca","weight":1e308},{"dataset":"sharegpt","weight":1e308}]}`))
	f.Add([]byte(`{"components":[{"dataset":"x","weight":-1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMix(b)
		if err != nil {
			return
		}
		if len(m.Components) == 0 {
			t.Fatal("valid mix without components")
		}
		_ = m.String()
	})
}

func FuzzParseHubRef(f *testing.F) {
	for _, s := range []string{"sharegpt", "org/name/file.json", "org/name@v1/dir/f.jsonl", "org/../x", "a/b/../../c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseHubRef(s)
		if err != nil {
			return
		}
		if strings.HasPrefix(r.Path, "..") || strings.HasPrefix(r.Path, "/") || r.Repo == "" || r.Revision == "" {
			t.Fatalf("ParseHubRef(%q) = %+v escapes or is empty", s, r)
		}
		h := &Hub{CacheDir: "/cache"}
		if dir := h.repoDir(r); !strings.HasPrefix(dir, "/cache/datasets--") {
			t.Fatalf("repo dir %s outside the cache", dir)
		}
	})
}
