package backends

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// GPU describes the first GPU nvidia-smi reports.
type GPU struct {
	Name          string `json:"name"`
	Driver        string `json:"driver"`
	CUDA          string `json:"cuda,omitempty"`
	MemoryMiB     int    `json:"memory_mib"`
	MemoryUsedMiB int    `json:"memory_used_mib"`
}

// ErrNoGPU means nvidia-smi is not installed or reports no GPU.
var ErrNoGPU = errors.New("no NVIDIA GPU (nvidia-smi not found or no device)")

// DetectGPU asks nvidia-smi about GPU 0.
func DetectGPU(ctx context.Context) (GPU, error) { return DetectGPUID(ctx, "0") }

// DetectGPUID asks nvidia-smi about one GPU, by index or UUID (an id of
// CUDA_VISIBLE_DEVICES).
func DetectGPUID(ctx context.Context, id string) (GPU, error) {
	out, err := nvidiaSMI(ctx, "--query-gpu=name,driver_version,memory.total,memory.used", "--format=csv,noheader,nounits", "-i", id)
	if err != nil {
		return GPU{}, err
	}
	f := strings.Split(strings.TrimSpace(out), ",")
	if len(f) < 4 {
		return GPU{}, fmt.Errorf("backends: nvidia-smi: unexpected output %q", out)
	}
	g := GPU{Name: strings.TrimSpace(f[0]), Driver: strings.TrimSpace(f[1])}
	g.MemoryMiB, _ = strconv.Atoi(strings.TrimSpace(f[2]))
	g.MemoryUsedMiB, _ = strconv.Atoi(strings.TrimSpace(f[3]))
	if full, err := nvidiaSMI(ctx); err == nil {
		if i := strings.Index(full, "CUDA Version:"); i >= 0 {
			g.CUDA = strings.Fields(full[i+len("CUDA Version:"):] + " ?")[0]
		}
	}
	return g, nil
}

// gpuMemoryUsedMiB sums the used memory of the GPUs ids (nil: GPU 0).
func gpuMemoryUsedMiB(ctx context.Context, ids []string) (int, error) {
	sel := "0"
	if len(ids) > 0 {
		sel = strings.Join(ids, ",")
	}
	out, err := nvidiaSMI(ctx, "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", sel)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, line := range strings.Fields(out) {
		v, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil {
			return 0, fmt.Errorf("backends: nvidia-smi memory.used %q: %w", out, err)
		}
		total += v
	}
	return total, nil
}

func nvidiaSMI(ctx context.Context, args ...string) (string, error) {
	path, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return "", ErrNoGPU
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).Output()
	if err != nil {
		return "", fmt.Errorf("backends: nvidia-smi: %w", err)
	}
	return string(out), nil
}
