package replay

import (
	"fmt"

	"github.com/vbench/vbench/trace"
)

// embedded is the in-process recording proxy of --capture mode.
type embedded struct{}

func startEmbedded(cfg *Config, hdr *trace.Header) (*embedded, error) {
	return nil, fmt.Errorf("replay: --capture (embedded proxy) is not available in this build yet; run vbproxy and point --target at it")
}

func (e *embedded) stop() (*CaptureStats, error) { return nil, nil }
