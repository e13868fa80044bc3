# vbench — see README.md. `make demo` and `make test` are the two promises.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
CMDS  := vbsynth vbproxy vbreplay vbanalyze vbbench vbsim
PY    ?= python3
export GO PY

.PHONY: h200-smoke-dist h200-study-dist all build test gotest fmt-check vet pytest slow lint demo bench fuzz reliability reliability-long setup-gpu clean linux-amd64 slurm-test offline-bundle dummy-model

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
	GOOS=linux GOARCH=amd64 CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags="-s -w" -o .dist/ ./cmd/vbbench ./cmd/vbsynth
	xz -T2 -6 -f .dist/vbbench .dist/vbsynth
	$(GO) run ./cmd/vbsynth --dataset sharegpt --span 10m --max-total 2048 --seed 1 --quiet -o .dist/traces/sharegpt-smoke.bin

# What bench/scripts/h200_study.sh needs besides the offline bundle: the
# compressed linux/amd64 vbbench and vbsynth, and each H200 study's trace,
# made with the exact command of its trace.generate.
h200-study-dist:
	@mkdir -p .dist/traces
	GOOS=linux GOARCH=amd64 CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags="-s -w" -o .dist/ ./cmd/vbbench ./cmd/vbsynth
	xz -T2 -6 -f .dist/vbbench .dist/vbsynth
	$(GO) run ./cmd/vbsynth --dataset sharegpt --requests 6000 --max-total 2048 --seed 1 --quiet -o .dist/traces/sharegpt-dense.bin
	$(GO) run ./cmd/vbsynth --dataset alpaca --requests 12000 --max-total 2048 --seed 1 --quiet -o .dist/traces/alpaca-dense.bin

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

# uv sync of the Python servers; VLLM=1 (or the pinned version) adds vLLM, FLASH=1 flash-attn.
setup-gpu:
	VLLM="$(VLLM)" FLASH="$(FLASH)" ./scripts/setup-gpu.sh

# The offline vLLM bundle for GPU hosts without network (docs/offline.md):
#   make offline-bundle VLLM=0.26.0 [MOE=1] [MODELS="llama3-8b ..."]
# writes .bundle/vllm-VERSION[-moe]/callN/, one folder per device call.
MODELS ?= llama3-8b$(if $(filter 1,$(MOE)), qwen3-30b-a3b-instruct-2507-fp8)
offline-bundle:
	@for m in $(MODELS); do [ -f $(MODELS_DIR)/$$m/config.json ] || $(MAKE) --no-print-directory dummy-model MODEL=$$m || exit 1; done
	MOE="$(MOE)" MODELS="$(MODELS)" MODELS_DIR="$(MODELS_DIR)" ./offline/bundle.sh "$(or $(VLLM),1)"

# A model folder without weights for --load-format dummy (config + local tokenizer):
#   make dummy-model MODEL=llama3-8b | qwen3-30b-a3b-instruct-2507-fp8   (needs tokenizers, transformers)
# into $(MODELS_DIR)/$(MODEL); CORPUS: the text the tokenizer is trained on (tokbuild --corpus).
MODEL ?= llama3-8b
MODELS_DIR ?= $(CURDIR)/.bundle/models
CORPUS ?= stdlib
dummy-model:
	cd backends/torch && $(PY) -m vbtorch.tokbuild --out $(MODELS_DIR)/$(MODEL) --shape $(MODEL) --corpus $(CORPUS)

clean:
	rm -rf $(BIN) .dist demo-results

# The Slurm executor tested for real: a one-node Slurm (slurm-wlm, munge) started
# in a scratch directory, a simulator study as a job array, then stopped. Needs
# root and the packages (SLURM_INSTALL=1 installs them with apt-get, as .ci/run
# does); ~30 s, bounded by TIMEOUT (default 600 s).
slurm-test:
	./scripts/slurm-test.sh
