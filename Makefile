# vbench — see README.md. `make demo` and `make test` are the two promises.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
CMDS  := vbsynth vbproxy vbreplay vbanalyze vbbench vbsim
PY    ?= python3

.PHONY: h200-smoke-dist all build test gotest fmt-check vet pytest demo bench fuzz reliability reliability-long setup-gpu clean linux-amd64

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

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

test: fmt-check vet gotest pytest

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

gotest:
	$(GO) test -race -timeout 15m ./...

# Python tests of the PyTorch baseline server (CPU, tiny random model).
pytest:
	@if [ -d backends/torch/tests ]; then \
		if $(PY) -c 'import torch, transformers, pytest' 2>/dev/null; then \
			cd backends/torch && $(PY) -m pytest -q tests; \
		else echo "pytest: torch/transformers/pytest missing; run .ci/run or 'pip install -r backends/torch/requirements-test.txt'"; exit 1; fi; \
	fi

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
