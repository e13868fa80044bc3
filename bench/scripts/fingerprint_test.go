package scripts

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestFingerprintScript runs bench/scripts/fingerprint.py as the H200
// driver does, with a stand-in nvidia-smi that, like an older driver's,
// refuses the newer name of the throttle-reasons field: the script falls
// back to the older name, and prints one JSON line with the host's figures
// (without CUDA here, the GPU's are null) and a busy process among the
// busiest (--top 50 --min-percent 0.1: a busy test machine has others,
// and may leave the loop only a small share of a core).
func TestFingerprintScript(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	bin := t.TempDir()
	fake := `#!/bin/sh
case "$*" in
  *clocks_event_reasons*) echo "Field \"clocks_event_reasons.active\" is not a valid field to query." >&2; exit 2 ;;
  *clocks_throttle_reasons*) echo "1980, 1980, 31, 121.40, 0x0000000000000000" ;;
  *) echo "1980, 1980, 31, 121.40" ;;
esac
`
	if err := os.WriteFile(filepath.Join(bin, "nvidia-smi"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	busy := exec.Command("sh", "-c", "while :; do :; done")
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	defer busy.Process.Kill()
	cmd := exec.Command("python3", "fingerprint.py", "--label", "trial 3", "--top", "50", "--min-percent", "0.1")
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "CUDA_VISIBLE_DEVICES=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fingerprint.py: %v\n%s", err, out)
	}
	var r struct {
		Label    string            `json:"label"`
		PyLoopNS float64           `json:"py_loop_ns"`
		Busiest  []string          `json:"busiest"`
		GPU      map[string]string `json:"gpu"`
		CPU      struct {
			Count int      `json:"count"`
			MHz   *float64 `json:"mhz"`
		} `json:"cpu"`
	}
	if strings.Count(strings.TrimSpace(string(out)), "\n") != 0 || json.Unmarshal(out, &r) != nil {
		t.Fatalf("want one JSON line, got:\n%s", out)
	}
	if r.Label != "trial 3" || r.PyLoopNS <= 0 || r.CPU.Count < 1 {
		t.Errorf("label %q, Python loop %g ns, %d CPUs", r.Label, r.PyLoopNS, r.CPU.Count)
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil && strings.Contains(string(b), "cpu MHz") && (r.CPU.MHz == nil || *r.CPU.MHz <= 0) {
		t.Errorf("cpu MHz = %v, want /proc/cpuinfo's", r.CPU.MHz)
	}
	if r.GPU["sm_mhz"] != "1980" || r.GPU["temp_c"] != "31" || r.GPU["throttle"] != "0x0000000000000000" {
		t.Errorf("gpu = %v, want the stand-in's clocks and reasons", r.GPU)
	}
	found := false
	for _, b := range r.Busiest {
		found = found || strings.HasPrefix(b, "sh "+strconv.Itoa(busy.Process.Pid)+": ")
	}
	if !found {
		t.Errorf("busiest = %v, want the busy sh (pid %d) among them", r.Busiest, busy.Process.Pid)
	}

	// The GPU's part, with a stand-in torch whose CUDA is "available" and
	// whose kernels do nothing: every figure is measured (no path left
	// unrun until a GPU runs it).
	fakeTorch := t.TempDir()
	if err := os.WriteFile(filepath.Join(fakeTorch, "torch.py"), []byte(fakeTorchModule), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command("python3", "fingerprint.py", "--label", "gpu")
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "PYTHONPATH="+fakeTorch)
	if out, err = cmd.Output(); err != nil {
		t.Fatalf("fingerprint.py with the stand-in torch: %v\n%s", err, out)
	}
	var g map[string]any
	if err := json.Unmarshal(out, &g); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	for _, k := range []string{"launch_us", "sync_us", "hbm_gbs", "bf16_tflops"} {
		if v, ok := g[k].(float64); !ok || v < 0 {
			t.Errorf("%s = %v, want a measured figure", k, g[k])
		}
	}
}

// fakeTorchModule stands in for torch: CUDA available, tensors that do
// nothing.
const fakeTorchModule = `
bfloat16 = "bf16"


class T:
    def __init__(self, n=1):
        self.n = n

    def add_(self, v):
        return self

    def copy_(self, o):
        return self

    def numel(self):
        return self.n

    def element_size(self):
        return 2


class _Cuda:
    def is_available(self):
        return True

    def synchronize(self):
        pass

    def empty_cache(self):
        pass


cuda = _Cuda()


def zeros(n, device=None):
    return T(n)


def empty(n, dtype=None, device=None):
    return T(n)


def empty_like(t):
    return T(t.n)


def randn(a, b, dtype=None, device=None):
    return T(a * b)


def mm(a, b):
    return T()
`
