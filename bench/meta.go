package bench

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/vbench/vbench/backends"
	"github.com/vbench/vbench/proxy"
)

// Meta is meta.json of a trial: where and with what it ran.
type Meta struct {
	Tool        string `json:"tool"`
	ToolVersion string `json:"tool_version"`
	GoVersion   string `json:"go_version"`
	// GitCommit and GitDirty describe the project checkout vbbench ran from.
	GitCommit string `json:"git_commit,omitempty"`
	GitDirty  bool   `json:"git_dirty"`
	Host      string `json:"host"`
	OS        string `json:"os"`
	// GPU is what nvidia-smi said (about the first of the trial's GPUs);
	// GPUError why it said nothing.
	GPU      *backends.GPU `json:"gpu,omitempty"`
	GPUError string        `json:"gpu_error,omitempty"`
	// GPUIDs are the GPU lanes the trial was pinned to; CUDAVisibleDevices
	// is the variable as vbbench found it (set by Slurm, or by the user).
	GPUIDs             []string `json:"gpu_ids,omitempty"`
	CUDAVisibleDevices string   `json:"cuda_visible_devices,omitempty"`
	// Slurm holds the SLURM_* job variables when a Slurm task ran the trial
	// (job, array task, node, GPUs).
	Slurm map[string]string `json:"slurm,omitempty"`
	// BackendKind and BackendVersion describe the server; Python holds the
	// versions of its Python packages (vllm, torch, transformers, ...).
	BackendKind    string            `json:"backend_kind"`
	BackendVersion string            `json:"backend_version,omitempty"`
	Python         map[string]string `json:"python_packages,omitempty"`
	// StartupSeconds is the server's start-up: from launch to the first
	// healthy answer (model load, compilation, CUDA-graph capture).
	StartupSeconds float64 `json:"startup_seconds,omitempty"`
	// Allocated is what the server says it allocated, read from its
	// /metrics once healthy (ServerAllocation); nil when it exports none.
	Allocated map[string]float64 `json:"server_allocated,omitempty"`
	// AllocatedError says why Allocated could not be read.
	AllocatedError string    `json:"server_allocated_error,omitempty"`
	Started        time.Time `json:"started"`
	Ended          time.Time `json:"ended"`
}

// allocationSeries are the /metrics series that say what a server
// allocated at start-up: vLLM's cache_config_info labels (KV capacity in
// tokens and blocks, block size, the memory fraction, the largest
// concurrency at max_model_len), vbtorch's and vbsim's KV capacity.
var allocationSeries = []string{"vbtorch:kv_capacity_tokens", "vbsim:kv_cache_capacity_tokens"}

// ServerAllocation reads a healthy server's /metrics once and returns the
// figures of what it allocated (see allocationSeries), keyed by series
// name, e.g. "vllm:cache_config_info:kv_cache_size_tokens": 32768.
func ServerAllocation(ctx context.Context, baseURL string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(baseURL, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, smp := range proxy.ParseMetrics(body, 0, allocationSeries...) {
		if strings.HasPrefix(smp.Name, proxy.CacheConfigInfo+":") || slices.Contains(allocationSeries, smp.Name) {
			out[smp.Name] = smp.Value
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// slurmVars are the job variables meta.json records from a Slurm task.
var slurmVars = []string{"SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_NAME",
	"SLURM_JOB_PARTITION", "SLURM_JOB_ACCOUNT", "SLURMD_NODENAME", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS"}

func collectMeta(ctx context.Context, toolVersion string, spec backends.Spec, start time.Time, gpus []string) *Meta {
	m := &Meta{Tool: "vbbench", ToolVersion: toolVersion, GoVersion: runtime.Version(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, BackendKind: spec.Kind, Started: start,
		GPUIDs: gpus, CUDAVisibleDevices: os.Getenv("CUDA_VISIBLE_DEVICES")}
	for _, k := range slurmVars {
		if v := os.Getenv(k); v != "" {
			if m.Slurm == nil {
				m.Slurm = map[string]string{}
			}
			m.Slurm[k] = v
		}
	}
	if m.ToolVersion == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			m.ToolVersion = bi.Main.Version
		}
	}
	m.Host, _ = os.Hostname()
	if out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output(); err == nil {
		m.GitCommit = strings.TrimSpace(string(out))
		if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
			m.GitDirty = len(strings.TrimSpace(string(st))) > 0
		}
	}
	first := "0"
	if len(gpus) > 0 {
		first = gpus[0]
	}
	if g, err := backends.DetectGPUID(ctx, first); err == nil {
		m.GPU = &g
	} else {
		m.GPUError = err.Error()
	}
	return m
}

// pythonPackages are the packages whose versions a trial records.
var pythonPackages = []string{"vllm", "torch", "transformers", "flash-attn", "flashinfer-python", "triton", "vbtorch"}

// pythonVersions asks the backend's Python environment for its package
// versions; nil for kinds without Python.
func pythonVersions(ctx context.Context, spec backends.Spec, c backends.Command) map[string]string {
	var py string
	switch spec.Kind {
	case backends.KindTorch:
		py = c.Argv[0]
	case backends.KindVLLM, backends.KindTransformers:
		for _, name := range []string{"python", "python3"} {
			p := filepath.Join(filepath.Dir(c.Argv[0]), name)
			if _, err := os.Stat(p); err == nil {
				py = p
				break
			}
		}
		if py == "" {
			py = shebangPython(c.Argv[0])
		}
		if spec.Python != "" {
			py = spec.Python
		}
	default:
		return nil
	}
	if py == "" {
		return map[string]string{"error": "no python found next to " + c.Argv[0]}
	}
	script := `import json, sys, importlib.metadata as m
out = {"python": sys.version.split()[0]}
for p in sys.argv[1:]:
    try: out[p] = m.version(p)
    except Exception: pass
print(json.dumps(out))`
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, append([]string{"-c", script}, pythonPackages...)...).Output()
	if err != nil {
		return map[string]string{"error": fmt.Sprintf("%s: %v", py, err)}
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(lastLine(string(out))), &v); err != nil {
		return map[string]string{"error": fmt.Sprintf("%s: unexpected output %q", py, lastLine(string(out)))}
	}
	return v
}

// shebangPython returns the interpreter a console script names on its
// first line ("#!/usr/bin/python3" or "#!/usr/bin/env python3", as in a
// pip --target tree such as the offline bundle's), or "".
func shebangPython(script string) string {
	f, err := os.Open(script)
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, 256)
	n, _ := io.ReadFull(f, buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	rest, ok := strings.CutPrefix(line, "#!")
	if !ok {
		return ""
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return ""
	}
	prog := fields[0]
	if filepath.Base(prog) == "env" && len(fields) > 1 {
		prog = fields[1]
	}
	if !strings.Contains(filepath.Base(prog), "python") {
		return ""
	}
	p, err := exec.LookPath(prog)
	if err != nil {
		return ""
	}
	return p
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// archiveCaptures packs dir/capture into dir/capture.tar.gz and removes the
// raw directory; the analysis outputs stay.
func archiveCaptures(dir string) error {
	src := filepath.Join(dir, "capture")
	if _, err := os.Stat(src); err != nil {
		return nil
	}
	dst := filepath.Join(dir, "capture.tar.gz")
	f, err := os.Create(dst + ".tmp")
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		_, err = io.Copy(tw, in)
		return err
	})
	for _, c := range []io.Closer{tw, zw, f} {
		if cerr := c.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		os.Remove(dst + ".tmp")
		return fmt.Errorf("bench: archive %s: %w", src, err)
	}
	if err := os.Rename(dst+".tmp", dst); err != nil {
		return err
	}
	return os.RemoveAll(src)
}

// allocationNote renders the KV capacity a server reported, for progress
// lines: "; KV 32768 tokens (2048 blocks of 16)".
func allocationNote(a map[string]float64) string {
	kv, ok := KVAllocation(a)
	if !ok {
		return ""
	}
	s := fmt.Sprintf("; KV %.0f tokens", kv.Tokens)
	if kv.Blocks > 0 {
		s += fmt.Sprintf(" (%.0f blocks of %.0f)", kv.Blocks, kv.BlockSize)
	}
	return s
}

// KVCache is the KV cache a server says it allocated (Meta.Allocated):
// its tokens and, for a paged server, its blocks and their size (0 when
// not reported).
type KVCache struct {
	Tokens, Blocks, BlockSize float64
}

// KVAllocation reads the KV cache from a server's allocation: vLLM's
// cache_config_info (kv_cache_size_tokens, else its blocks × block size),
// else vbtorch's or vbsim's capacity series. ok is false when the server
// said none of them.
func KVAllocation(a map[string]float64) (kv KVCache, ok bool) {
	kv.Blocks, kv.BlockSize = a[proxy.CacheConfigInfo+":num_gpu_blocks"], a[proxy.CacheConfigInfo+":block_size"]
	if v, ok := a[proxy.CacheConfigInfo+":kv_cache_size_tokens"]; ok {
		kv.Tokens = v
		return kv, true
	}
	for _, k := range allocationSeries {
		if v, ok := a[k]; ok {
			kv.Tokens = v
			return kv, true
		}
	}
	if kv.Blocks > 0 && kv.BlockSize > 0 {
		kv.Tokens = kv.Blocks * kv.BlockSize
		return kv, true
	}
	return KVCache{}, false
}
