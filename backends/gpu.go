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
func DetectGPU(ctx context.Context) (GPU, error) {
	out, err := nvidiaSMI(ctx, "--query-gpu=name,driver_version,memory.total,memory.used", "--format=csv,noheader,nounits", "-i", "0")
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

func gpuMemoryUsedMiB(ctx context.Context) (int, error) {
	out, err := nvidiaSMI(ctx, "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0")
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return 0, fmt.Errorf("backends: nvidia-smi memory.used %q: %w", out, err)
	}
	return v, nil
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
