package synth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// KnownHubDatasets maps the short hub names to the files vLLM's benchmarks
// use: hf:sharegpt is the ShareGPT_V3 file `vllm bench serve` documents;
// hf:alpaca is the cleaned Alpaca JSON (the hub's tatsu-lab/alpaca holds
// Parquet only).
// (A new map each call.)
func KnownHubDatasets() map[string]HubRef {
	return map[string]HubRef{
		"sharegpt": {Repo: "anon8231489123/ShareGPT_Vicuna_unfiltered", Path: "ShareGPT_V3_unfiltered_cleaned_split.json", Revision: "main", Format: FormatShareGPT},
		"alpaca":   {Repo: "yahma/alpaca-cleaned", Path: "alpaca_data_cleaned.json", Revision: "main", Format: FormatAlpaca},
	}
}

// HubRef names one file of a Hugging Face dataset repository.
type HubRef struct {
	Repo     string // "org/name"
	Path     string // file path inside the repository
	Revision string // branch, tag or commit; "main" by default
	Format   string // dataset format hint; "" detects
}

// String returns "org/name@rev/path".
func (r HubRef) String() string { return r.Repo + "@" + r.Revision + "/" + r.Path }

// ParseHubRef parses what follows "hf:" in --dataset: a known short name
// (sharegpt, alpaca) or ORG/NAME[@REVISION]/PATH.
func ParseHubRef(s string) (HubRef, error) {
	if r, ok := KnownHubDatasets()[strings.ToLower(s)]; ok {
		return r, nil
	}
	parts := strings.SplitN(s, "/", 3)
	if len(parts) < 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return HubRef{}, fmt.Errorf("synth: hub dataset %q: want hf:sharegpt, hf:alpaca or hf:ORG/NAME[@REVISION]/PATH", s)
	}
	name, rev, _ := strings.Cut(parts[1], "@")
	if rev == "" {
		rev = "main"
	}
	p := path.Clean(parts[2])
	if strings.HasPrefix(p, "..") || strings.HasPrefix(p, "/") {
		return HubRef{}, fmt.Errorf("synth: hub dataset %q: bad path %q", s, parts[2])
	}
	for _, part := range []string{parts[0], name, rev} {
		if strings.ContainsAny(part, `\`) || part == "." || part == ".." {
			return HubRef{}, fmt.Errorf("synth: hub dataset %q: bad name %q", s, part)
		}
	}
	return HubRef{Repo: parts[0] + "/" + name, Path: p, Revision: rev}, nil
}

// Hub downloads dataset files from the Hugging Face Hub (or a mirror) into
// the cache layout huggingface_hub uses, so files fetched by Python tools
// are reused and vice versa:
//
//	CACHE/datasets--ORG--NAME/refs/REVISION            commit hash
//	CACHE/datasets--ORG--NAME/blobs/ETAG               the bytes
//	CACHE/datasets--ORG--NAME/snapshots/COMMIT/PATH -> ../../blobs/ETAG
//
// A file is downloaded at most once: a cached ref and snapshot answer
// without any network access, and a blob already present under the same
// ETag is linked instead of fetched again.
type Hub struct {
	// Endpoint is the hub URL (HF_ENDPOINT; https://huggingface.co).
	Endpoint string
	// CacheDir is the hub cache (HF_HUB_CACHE, HF_HOME/hub, or
	// ~/.cache/huggingface/hub).
	CacheDir string
	// Token is sent as a bearer token (HF_TOKEN or the HF_HOME/token file).
	Token string
	// Offline forbids network access (HF_HUB_OFFLINE=1).
	Offline bool
	// Client does the requests; nil is a client with connect and
	// response-header timeouts but no overall limit.
	Client *http.Client
	// Progress receives a progress bar while downloading; nil is silent.
	Progress io.Writer
}

// HubFromEnv builds a Hub from the standard Hugging Face environment
// variables; getenv nil is os.Getenv.
func HubFromEnv(getenv func(string) string) *Hub {
	if getenv == nil {
		getenv = os.Getenv
	}
	h := &Hub{Endpoint: strings.TrimRight(getenv("HF_ENDPOINT"), "/")}
	if h.Endpoint == "" {
		h.Endpoint = "https://huggingface.co"
	}
	home := getenv("HF_HOME")
	if home == "" {
		cache := getenv("XDG_CACHE_HOME")
		if cache == "" {
			if dir, err := os.UserHomeDir(); err == nil {
				cache = filepath.Join(dir, ".cache")
			}
		}
		home = filepath.Join(cache, "huggingface")
	}
	h.CacheDir = getenv("HF_HUB_CACHE")
	if h.CacheDir == "" {
		h.CacheDir = filepath.Join(home, "hub")
	}
	h.Token = getenv("HF_TOKEN")
	if h.Token == "" {
		tokenPath := getenv("HF_TOKEN_PATH")
		if tokenPath == "" {
			tokenPath = filepath.Join(home, "token")
		}
		if b, err := os.ReadFile(tokenPath); err == nil {
			h.Token = strings.TrimSpace(string(b))
		}
	}
	switch strings.ToLower(getenv("HF_HUB_OFFLINE")) {
	case "1", "true", "yes", "on":
		h.Offline = true
	}
	return h
}

// ErrOffline is returned when offline mode forbids a download the cache
// cannot answer.
var ErrOffline = errors.New("not in the cache and HF_HUB_OFFLINE is set")

func (h *Hub) repoDir(ref HubRef) string {
	return filepath.Join(h.CacheDir, "datasets--"+strings.ReplaceAll(ref.Repo, "/", "--"))
}

// Cached returns the cached path of ref, if present.
func (h *Hub) Cached(ref HubRef) (string, bool) {
	dir := h.repoDir(ref)
	commit := ref.Revision
	if b, err := os.ReadFile(filepath.Join(dir, "refs", ref.Revision)); err == nil {
		commit = strings.TrimSpace(string(b))
	}
	p := filepath.Join(dir, "snapshots", commit, filepath.FromSlash(ref.Path))
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
		return p, true
	}
	return "", false
}

// Fetch returns the local path of ref, downloading it into the cache unless
// it is there already.
func (h *Hub) Fetch(ctx context.Context, ref HubRef) (string, error) {
	if p, ok := h.Cached(ref); ok {
		return p, nil
	}
	if h.Offline {
		return "", fmt.Errorf("synth: hub %s: %w (cache %s)", ref, ErrOffline, h.CacheDir)
	}
	u := h.Endpoint + "/datasets/" + ref.Repo + "/resolve/" + url.PathEscape(ref.Revision) + "/" + escapePath(ref.Path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("synth: hub %s: %w", ref, err)
	}
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	client := h.Client
	if client == nil {
		// No overall timeout (datasets can be large); connection set-up and
		// the first response byte are bounded instead.
		client = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   30 * time.Second,
			ResponseHeaderTimeout: time.Minute,
		}}
	}
	// The hub answers a resolve request with the commit and ETag, then
	// often redirects LFS files to a CDN: keep the first answer's headers.
	first := http.Header{}
	c := *client
	c.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("too many redirects")
		}
		if r.Response != nil && len(via) == 1 {
			first = r.Response.Header.Clone()
		}
		return nil
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("synth: hub %s: %w (no network? set HF_ENDPOINT to a mirror, or pass a local file with --dataset PATH)", ref, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		hint := ""
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = " (gated or private: set HF_TOKEN)"
		case http.StatusNotFound:
			hint = " (check the repository id, revision and file path)"
		}
		return "", fmt.Errorf("synth: hub %s: GET %s: %s%s: %s", ref, u, resp.Status, hint, strings.TrimSpace(string(msg)))
	}
	if len(first) == 0 {
		first = resp.Header
	}
	commit := first.Get("X-Repo-Commit")
	if commit == "" {
		commit = ref.Revision
	}
	etag := first.Get("X-Linked-Etag")
	if etag == "" {
		etag = first.Get("ETag")
	}
	etag = strings.Trim(strings.TrimPrefix(etag, "W/"), `"`)
	if etag == "" || strings.ContainsAny(etag, `/\`) || etag == "." || etag == ".." {
		etag = "noetag-" + commit + "-" + strings.ReplaceAll(ref.Path, "/", "_")
	}
	dir := h.repoDir(ref)
	blob := filepath.Join(dir, "blobs", etag)
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return "", fmt.Errorf("synth: hub cache: %w", err)
	}
	if _, err := os.Stat(blob); err != nil {
		if err := h.download(resp, blob, ref); err != nil {
			return "", err
		}
	}
	snap := filepath.Join(dir, "snapshots", commit, filepath.FromSlash(ref.Path))
	if err := os.MkdirAll(filepath.Dir(snap), 0o755); err != nil {
		return "", fmt.Errorf("synth: hub cache: %w", err)
	}
	rel, err := filepath.Rel(filepath.Dir(snap), blob)
	if err != nil {
		rel = blob
	}
	os.Remove(snap)
	if err := os.Symlink(rel, snap); err != nil {
		if err := copyFile(blob, snap); err != nil {
			return "", fmt.Errorf("synth: hub cache: %w", err)
		}
	}
	if commit != ref.Revision {
		if err := os.MkdirAll(filepath.Join(dir, "refs"), 0o755); err == nil {
			os.WriteFile(filepath.Join(dir, "refs", ref.Revision), []byte(commit), 0o644)
		}
	}
	return snap, nil
}

func (h *Hub) download(resp *http.Response, blob string, ref HubRef) error {
	tmp := blob + ".incomplete"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("synth: hub cache: %w", err)
	}
	var w io.Writer = f
	var bar *progressBar
	if h.Progress != nil {
		bar = &progressBar{out: h.Progress, name: ref.Path, total: resp.ContentLength}
		w = io.MultiWriter(f, bar)
	}
	n, err := io.Copy(w, resp.Body)
	if bar != nil {
		bar.finish()
	}
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", n, resp.ContentLength)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("synth: hub %s: download: %w", ref, err)
	}
	if err := os.Rename(tmp, blob); err != nil {
		return fmt.Errorf("synth: hub cache: %w", err)
	}
	return nil
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// progressBar draws "name  [=====>    ]  12.0/640.0 MiB  2%" on one line,
// redrawn at most ten times a second.
type progressBar struct {
	out   io.Writer
	name  string
	total int64
	n     int64
	last  time.Time
}

func (p *progressBar) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond {
		p.last = now
		p.draw()
	}
	return len(b), nil
}

func (p *progressBar) draw() {
	const mib = 1 << 20
	if p.total <= 0 {
		fmt.Fprintf(p.out, "\rdownloading %s  %.1f MiB", p.name, float64(p.n)/mib)
		return
	}
	const width = 30
	frac := float64(p.n) / float64(p.total)
	fill := int(frac * width)
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	if fill > 0 && fill < width {
		bar = strings.Repeat("=", fill-1) + ">" + strings.Repeat(" ", width-fill)
	}
	fmt.Fprintf(p.out, "\rdownloading %s [%s] %.1f/%.1f MiB %3.0f%%", p.name, bar, float64(p.n)/mib, float64(p.total)/mib, 100*frac)
}

func (p *progressBar) finish() {
	p.draw()
	fmt.Fprintln(p.out)
}
