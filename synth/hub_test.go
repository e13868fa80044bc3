package synth

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeHub stands in for huggingface.co: /datasets/ORG/NAME/resolve/REV/PATH
// answers with X-Repo-Commit and ETag, and LFS-style files redirect to a
// CDN path first, as the real hub does.
type fakeHub struct {
	srv       *httptest.Server
	resolves  atomic.Int32
	downloads atomic.Int32
	auth      atomic.Value
}

func newFakeHub(t *testing.T, files map[string]string) *fakeHub {
	h := &fakeHub{}
	h.auth.Store("")
	mux := http.NewServeMux()
	mux.HandleFunc("/datasets/", func(w http.ResponseWriter, r *http.Request) {
		h.resolves.Add(1)
		h.auth.Store(r.Header.Get("Authorization"))
		rest := strings.TrimPrefix(r.URL.Path, "/datasets/")
		parts := strings.SplitN(rest, "/", 5) // org, name, resolve, rev, path
		if len(parts) < 5 || parts[2] != "resolve" {
			http.NotFound(w, r)
			return
		}
		body, ok := files[parts[0]+"/"+parts[1]+"/"+parts[4]]
		if !ok {
			http.Error(w, "Entry not found", http.StatusNotFound)
			return
		}
		w.Header().Set("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567")
		if strings.HasSuffix(parts[4], ".json") {
			w.Header().Set("X-Linked-Etag", `"sha-`+parts[1]+`"`)
			http.Redirect(w, r, "/cdn/"+rest, http.StatusFound)
			return
		}
		w.Header().Set("ETag", `"plain-etag"`)
		h.downloads.Add(1)
		w.Write([]byte(body))
	})
	mux.HandleFunc("/cdn/", func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.Path, "/cdn/")
		parts := strings.SplitN(rest, "/", 5)
		h.downloads.Add(1)
		w.Header().Set("ETag", `"cdn-etag-differs"`)
		w.Write([]byte(files[parts[0]+"/"+parts[1]+"/"+parts[4]]))
	})
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	return h
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestHubDownloadCacheOffline(t *testing.T) {
	alpaca, _ := os.ReadFile("testdata/alpaca_small.json")
	fh := newFakeHub(t, map[string]string{"org/alp/data/alpaca.json": string(alpaca), "org/alp/README.md": "hi"})
	home := t.TempDir()
	vars := map[string]string{"HF_ENDPOINT": fh.srv.URL + "/", "HF_HOME": home, "HF_TOKEN": "hf_secret"}
	hub := HubFromEnv(env(vars))
	if hub.CacheDir != home+"/hub" || hub.Endpoint != fh.srv.URL || hub.Offline {
		t.Fatalf("hub from env = %+v", hub)
	}
	var progress bytes.Buffer
	hub.Progress = &progress
	ref, err := ParseHubRef("org/alp/data/alpaca.json")
	if err != nil {
		t.Fatal(err)
	}
	p1, err := hub.Fetch(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if fh.downloads.Load() != 1 || fh.auth.Load() != "Bearer hf_secret" {
		t.Fatalf("downloads %d auth %q", fh.downloads.Load(), fh.auth.Load())
	}
	want := home + "/hub/datasets--org--alp/snapshots/0123456789abcdef0123456789abcdef01234567/data/alpaca.json"
	if p1 != want {
		t.Errorf("path %s, want %s", p1, want)
	}
	if b, _ := os.ReadFile(p1); !bytes.Equal(b, alpaca) {
		t.Error("cached bytes differ")
	}
	if _, err := os.Stat(home + "/hub/datasets--org--alp/blobs/sha-alp"); err != nil {
		t.Errorf("blob not stored under the linked ETag: %v", err)
	}
	if ref, _ := os.ReadFile(home + "/hub/datasets--org--alp/refs/main"); string(ref) != "0123456789abcdef0123456789abcdef01234567" {
		t.Errorf("refs/main = %q", ref)
	}
	if !strings.Contains(progress.String(), "downloading data/alpaca.json") {
		t.Errorf("no progress bar: %q", progress.String())
	}

	// Second run: answered from the cache, no request at all.
	before := fh.resolves.Load()
	p2, err := HubFromEnv(env(vars)).Fetch(context.Background(), ref)
	if err != nil || p2 != p1 || fh.resolves.Load() != before {
		t.Fatalf("second fetch: %s, %v, requests %d -> %d", p2, err, before, fh.resolves.Load())
	}

	// Offline: cache hits work, misses fail clearly without a request.
	vars["HF_HUB_OFFLINE"] = "1"
	off := HubFromEnv(env(vars))
	if p, err := off.Fetch(context.Background(), ref); err != nil || p != p1 {
		t.Fatalf("offline cache hit: %s, %v", p, err)
	}
	other, _ := ParseHubRef("org/alp/README.md")
	if _, err := off.Fetch(context.Background(), other); !errors.Is(err, ErrOffline) {
		t.Fatalf("offline miss: %v, want ErrOffline", err)
	}
	if fh.resolves.Load() != before {
		t.Error("offline mode sent a request")
	}

	// A dataset through the loader: hf: prefix, same cache.
	delete(vars, "HF_HUB_OFFLINE")
	l := &Loader{Filter: Filter{}, Hub: HubFromEnv(env(vars))}
	p, err := l.load(context.Background(), "hf:org/alp/data/alpaca.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.items) != 3 || !p.text || fh.downloads.Load() != 1 {
		t.Errorf("loader: %d items, text %v, downloads %d", len(p.items), p.text, fh.downloads.Load())
	}
}

func TestHubErrors(t *testing.T) {
	fh := newFakeHub(t, map[string]string{})
	hub := HubFromEnv(env(map[string]string{"HF_ENDPOINT": fh.srv.URL, "HF_HUB_CACHE": t.TempDir()}))
	ref, _ := ParseHubRef("org/none/x.json")
	_, err := hub.Fetch(context.Background(), ref)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "check the repository") {
		t.Errorf("404 error: %v", err)
	}
	for _, bad := range []string{"", "org", "org/name", "org/name/../../etc", "org/../x"} {
		if _, err := ParseHubRef(bad); err == nil {
			t.Errorf("ParseHubRef(%q) accepted", bad)
		}
	}
	r, err := ParseHubRef("org/name@v2/dir/f.json")
	if err != nil || r.Revision != "v2" || r.Path != "dir/f.json" || r.Repo != "org/name" {
		t.Errorf("revision ref: %+v %v", r, err)
	}
	if r, _ := ParseHubRef("sharegpt"); r.Path != "ShareGPT_V3_unfiltered_cleaned_split.json" {
		t.Errorf("known name: %+v", r)
	}
	// Default cache location and token file.
	home := t.TempDir()
	os.WriteFile(home+"/token", []byte("hf_file\n"), 0o600)
	h := HubFromEnv(env(map[string]string{"HF_HOME": home}))
	if h.Token != "hf_file" || h.Endpoint != "https://huggingface.co" {
		t.Errorf("defaults: %+v", h)
	}
}
