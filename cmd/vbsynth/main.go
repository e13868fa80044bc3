// Command vbsynth synthesizes request traces from datasets (ShareGPT,
// Alpaca, embedded length profiles, weighted mixes), imports public traces
// (Azure, Mooncake, BurstGPT, vLLM custom), and inspects and converts trace
// files. Run `vbsynth --help`.
package main

import (
	"os"

	"github.com/vbench/vbench/internal/cli"
)

func main() { os.Exit(cli.Main("vbsynth", run)) }
