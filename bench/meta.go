package bench

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/vbench/vbench/backends"
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
	// GPU is what nvidia-smi said; GPUError why it said nothing.
	GPU      *backends.GPU `json:"gpu,omitempty"`
	GPUError string        `json:"gpu_error,omitempty"`
	// BackendKind and BackendVersion describe the server; Python holds the
	// versions of its Python packages (vllm, torch, transformers, ...).
	BackendKind    string            `json:"backend_kind"`
	BackendVersion string            `json:"backend_version,omitempty"`
	Python         map[string]string `json:"python_packages,omitempty"`
	Started        time.Time         `json:"started"`
	Ended          time.Time         `json:"ended"`
}

func collectMeta(ctx context.Context, toolVersion string, spec backends.Spec, start time.Time) *Meta {
	m := &Meta{Tool: "vbbench", ToolVersion: toolVersion, GoVersion: runtime.Version(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, BackendKind: spec.Kind, Started: start}
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
	if g, err := backends.DetectGPU(ctx); err == nil {
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
