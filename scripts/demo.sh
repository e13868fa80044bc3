#!/usr/bin/env bash
# make demo: the whole vbench study on the built-in simulator, no GPU, no
# network, a few minutes. Synthesizes a ShareGPT-like trace (embedded length
# profile), runs vbsim as two variants with the same KV budget — paged
# (vLLM-like) and contiguous with max reservation (Orca (Max)-like) — replays
# a rate ladder through the recording proxy (vbbench drives vbreplay's
# embedded proxy), analyses the captures and writes demo-results/report.md
# with charts.
#
# Environment: BIN (default bin, where `make build` put the commands),
# OUT (default demo-results), SPEED (default 8: the simulated OPT-13B/A100
# runs 8x faster than real time, so rates are 8x and latencies 1/8 of the
# simulated GPU's), DURATION (seconds per rate level, default 10), RATES
# (the simulated GPU's request rates, default "0.5 0.75 1 1.5 2 2.5 3").
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
OUT=${OUT:-demo-results}
SPEED=${SPEED:-8}
DURATION=${DURATION:-10}
RATES=${RATES:-0.5 0.75 1 1.5 2 2.5 3}

for c in vbsynth vbsim vbbench vbanalyze; do
	if [[ ! -x "$BIN/$c" ]]; then
		echo "demo: $BIN/$c is missing; run 'make build' (or 'make demo', which builds first)" >&2
		exit 1
	fi
done
BIN=$(cd "$BIN" && pwd)

# Rates are the simulated engine's requests/s times SPEED: 0.5 … 3 req/s
# of the simulated OPT-13B, around the vLLM paper's knees (Orca (Max)
# ≈0.5, vLLM ≈1.9 req/s on ShareGPT).
rates=$(awk -v s="$SPEED" -v list="$RATES" 'BEGIN { n = split(list, r, " "); for (i = 1; i <= n; i++) printf "%s%g", (i > 1 ? ", " : ""), r[i] * s }')
# Saturation (early stop and the report): 0.1 s/token of the simulated GPU,
# about 4x its unloaded normalized latency.
norm_us=$(awk -v s="$SPEED" 'BEGIN { printf "%d", 100000 / s }')

case "$OUT" in
"" | "/" | "." | "..") echo "demo: refusing OUT=$OUT" >&2; exit 2 ;;
esac
rm -rf "$OUT"
mkdir -p "$OUT"
start=$(date +%s)
echo "demo: synthesizing a ShareGPT-like trace (embedded length profile, Poisson arrivals)"
"$BIN/vbsynth" --dataset sharegpt --span 20m --seed 1 --quiet -o "$OUT/trace.bin"

# One study, both variants side by side on two lanes (same trace, same KV
# budget, same engine speed): vbbench runs them at once, so the demo takes
# half the time, and shows a live line per variant (plain lines when the
# output is not a terminal).
cat >"$OUT/demo.toml" <<TOML
# Written by scripts/demo.sh (make demo).
name = "demo"
description = "paged vs contiguous KV cache on the simulated OPT-13B/A100 (vLLM paper, fig. 12/13 shape), ${SPEED}x real time"
results_dir = "$OUT/results"
reports_dir = "$OUT/reports"
budget = "10m"

[trace]
path = "$OUT/trace.bin"

[run]
rates = [$rates]
duration = "${DURATION}s"
warmup = "2s"
max_drain = "30s"             # cap on the automatic drain (simulated requests take seconds)
startup_timeout = "30s"
stop_grace = "5s"
early_stop = { normalized_latency = "${norm_us}us" }
gpus = ["0", "1"]             # two lanes: the simulator needs no GPU, the ids only pair trials with lanes

[[models]]
name = "opt-13b-sim"
model = "sim"
served_model_name = "opt-13b-sim"
max_model_len = 2048
variants = ["sim-paged", "sim-contiguous"]

# The preset's KV budget (15,696 token slots) and step model for both.
[variants.sim-paged]
preset = "sim-paged"
sim_preset = "opt-13b-a100"
sim_speed = $SPEED

[variants.sim-contiguous]
preset = "sim-contiguous"
sim_preset = "opt-13b-a100"
sim_speed = $SPEED
sim_reservation = "max"
TOML

echo "demo: running sim-paged and sim-contiguous side by side (up to $(wc -w <<<"$RATES" | tr -d ' ') rates x ${DURATION}s each)"
if ! PATH="$BIN:$PATH" "$BIN/vbbench" run "$OUT/demo.toml" >"$OUT/vbbench.out"; then
	cat "$OUT/vbbench.out"
	echo "demo: the study failed; see above and $OUT/results/" >&2
	exit 1
fi

captures=() # (no mapfile: macOS ships bash 3.2)
while IFS= read -r d; do captures+=("$d"); done < <(find "$OUT/results" -path '*/capture/rate-*' -type d -prune | sort)
if [[ ${#captures[@]} -eq 0 ]]; then
	echo "demo: no captures under $OUT/results" >&2
	exit 1
fi
"$BIN/vbanalyze" "${captures[@]}" --by variant,rate --chart --out "$OUT" \
	--saturation "${norm_us}us" \
	--title "vbench demo: paged vs contiguous KV cache on the simulated OPT-13B/A100 (${SPEED}x real time)" >"$OUT/summary.txt"
cat "$OUT/summary.txt"

echo
echo "demo: done in $(($(date +%s) - start))s."
echo "  report:  $OUT/report.md"
echo "  charts:  $OUT/charts/ (norm_latency_vs_rate.png is the vLLM paper's figure 12 shape)"
echo "  study:   $OUT/reports/ and $OUT/results/ (per-trial captures, logs, metadata; vbbench's summary in $OUT/vbbench.out)"
echo "  The simulator ran ${SPEED}x faster than real time: divide rates by ${SPEED} and multiply latencies by ${SPEED} for the simulated GPU."
