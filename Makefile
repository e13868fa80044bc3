# vbench — see README.md. `make demo` and `make test` are the two promises.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
CMDS  := vbsynth vbproxy vbreplay vbanalyze vbbench vbsim
PY    ?= python3
export GO PY

.PHONY: h200-smoke-dist all build test gotest fmt-check vet pytest slow lint demo bench fuzz reliability reliability-long setup-gpu clean linux-amd64 slurm-test

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -buildvcs=auto -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

# Cross-build for the GPU machine (carried to the device as .dist/); replaytool
# is the mock server of bench/scripts/replay_quiet.sh.
linux-amd64:
	@mkdir -p .dist
	GOOS=linux GOARCH=amd64 CGO_ENABLED=0 $(GO) build -trimpath -o .dist/ $(addprefix ./cmd/,$(CMDS)) ./bench/scripts/replaytool

# What bench/scripts/h200_smoke.sh needs on the GPU host besides the offline
# bundle: compressed linux/amd64 vbbench and vbsynth, and the smoke trace.
h200-smoke-dist:
	@mkdir -p .dist/traces
	GOOS=linux GOARCH=amd64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o .dist/ ./cmd/vbbench ./cmd/vbsynth
	xz -T2 -6 -f .dist/vbbench .dist/vbsynth
	$(GO) run ./cmd/vbsynth --dataset sharegpt --span 10m --max-total 2048 --seed 1 --quiet -o .dist/traces/sharegpt-smoke.bin

# make test: gofmt, go vet, the Go unit tests (-short: slow tests are make
# slow's) and pytest; every step runs, a summary names the failures.
# scripts/test.sh says what each step runs.
test:
	./scripts/test.sh

fmt-check:
	./scripts/test.sh fmt

vet:
	./scripts/test.sh vet

gotest:
	./scripts/test.sh gotest

# Python tests of the PyTorch baseline server (CPU, tiny random models).
pytest:
	./scripts/test.sh pytest

# The slow tests (those that skip under -short): soaks, max-rate replays,
# whole simulated studies. CI runs them as a separate step.
slow:
	./scripts/test.sh slow

# go mod tidy -diff, staticcheck and ruff (.ci/run installs the pinned tools).
lint:
	./scripts/test.sh tidy staticcheck ruff

demo: build
	./scripts/demo.sh

bench:
	$(GO) test -run XXX -bench . -benchmem ./...

fuzz:
	./scripts/fuzz.sh 30s

reliability:
	$(GO) test -race -count=1 -timeout 15m -run Reliability ./internal/reliability/ -args -reliability=short

reliability-long:
	$(GO) test -count=1 -timeout 2h -run Reliability ./internal/reliability/ -args -reliability=long

setup-gpu:
	uv sync --extra torch $(if $(VLLM),--extra vllm) $(if $(FLASH),--extra flash)

clean:
	rm -rf $(BIN) .dist demo-results

# The Slurm executor tested for real: a one-node Slurm (slurm-wlm, munge) started
# in a scratch directory, a simulator study as a job array, then stopped. Needs
# root and the packages (SLURM_INSTALL=1 installs them with apt-get, as .ci/run
# does); ~30 s, bounded by TIMEOUT (default 600 s).
slurm-test:
	./scripts/slurm-test.sh
