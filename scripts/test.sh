#!/usr/bin/env bash
# The steps behind `make test`, `make lint` and `make slow`. Every step named
# runs even when an earlier one failed; a summary at the end names each
# step's result and time, and the exit status is non-zero when any failed.
#
#   scripts/test.sh [STEP...]    (no STEP: fmt vet gotest pytest, i.e. make test)
#
# Steps:
#   fmt          gofmt -l on the tracked Go files
#   vet          go vet ./...
#   gotest       go test -short -count=1 ./...: the unit tests; -race except in
#                the packages matching NORACE (their code starts no goroutine,
#                and the race detector makes their chart rendering ~20x slower)
#   pytest       the PyTorch baseline server's tests (backends/torch/tests)
#   slow         the slow tests, which skip under -short: go run
#                ./internal/testenv/slowtests lists them (see internal/testenv)
#   tidy         go mod tidy -diff
#   staticcheck  staticcheck ./... (.ci/run installs the pinned version)
#   ruff         ruff check backends/torch (.ci/run installs the pinned version)
#
# When pytest runs with Go steps it runs beside them (its own process; its
# output is shown when the Go steps are done): the Go tests mostly wait on
# sockets and timers, so the two share two cores well. VB_TEST_SERIAL=1 runs
# it after them instead.
#
# Environment: GO, PY (python3), GOFLAGS_TEST (extra go test flags, e.g. -v),
# GORACE (default atexit_sleep_ms=0: the race runtime otherwise sleeps 1 s at
# the exit of every test binary and of every helper process it starts),
# NORACE (a regexp of import paths), SLOW_TIMEOUT (go test -timeout of the
# slow step, default 20m), STATICCHECK, RUFF (the commands).
set -uo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
PY=${PY:-python3}
export GORACE=${GORACE:-atexit_sleep_ms=0}
NORACE=${NORACE:-'^github.com/vbench/vbench/(analyze(/.*)?|cmd/vbanalyze)$'}
GOTEST_P=${GOTEST_P:-4}
STATICCHECK=${STATICCHECK:-staticcheck}
RUFF=${RUFF:-ruff}
read -r -a extra <<<"${GOFLAGS_TEST:-}"

step_fmt() {
  local out
  out=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
  if [ -n "$out" ]; then
    echo "gofmt would change:"
    echo "$out"
    return 1
  fi
}

step_vet() { $GO vet ./...; }

step_gotest() {
  local all race norace rc=0
  all=$($GO list ./...) || return 1
  race=$(grep -Ev "$NORACE" <<<"$all")
  norace=$(grep -E "$NORACE" <<<"$all")
  if [ -n "$race" ]; then
    $GO test -short -count=1 -race -p "$GOTEST_P" -timeout 10m "${extra[@]}" $race || rc=1
  fi
  if [ -n "$norace" ]; then
    $GO test -short -count=1 -p "$GOTEST_P" -timeout 10m "${extra[@]}" $norace || rc=1
  fi
  return $rc
}

step_pytest() {
  [ -d backends/torch/tests ] || return 0
  # find_spec, not import: importing torch and transformers takes seconds (tens on a busy machine)
  if ! $PY -c 'import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ("torch", "transformers", "pytest")))' 2>/dev/null; then
    echo "pytest: torch, transformers or pytest is missing for $PY; run .ci/run or '$PY -m pip install -r backends/torch/requirements-test.txt'"
    return 1
  fi
  (cd backends/torch && $PY -m pytest -q tests)
}

step_slow() {
  local list run pkgs
  list=$($GO run ./internal/testenv/slowtests) || return 1
  read -r run pkgs <<<"$list"
  echo "slow tests: $run"
  $GO test -count=1 -race -timeout "${SLOW_TIMEOUT:-20m}" "${extra[@]}" -run "$run" $pkgs
}

step_tidy() {
  # -diff prints what tidy would change and exits 1 (Go 1.23+).
  $GO mod tidy -diff
}

step_staticcheck() {
  if ! command -v "$STATICCHECK" >/dev/null; then
    echo "staticcheck is not installed: .ci/run installs it (go install honnef.co/go/tools/cmd/staticcheck@VERSION, the version .ci/run pins)"
    return 1
  fi
  "$STATICCHECK" ./...
}

step_ruff() {
  if ! command -v "$RUFF" >/dev/null; then
    echo "ruff is not installed: .ci/run installs it ($PY -m pip install ruff==VERSION, the version .ci/run pins)"
    return 1
  fi
  "$RUFF" check backends/torch
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(fmt vet gotest pytest)
for s in "${steps[@]}"; do
  if [ "$(type -t "step_$s")" != function ]; then
    echo "scripts/test.sh: unknown step $s (steps: fmt vet gotest pytest slow tidy staticcheck ruff)" >&2
    exit 2
  fi
done

declare -A result took
start=$SECONDS
tmp=$(mktemp -d)
bg=
cleanup() {
  [ -z "$bg" ] || kill "$bg" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# pytest beside the Go steps when there are any.
if [ ${#steps[@]} -gt 1 ] && [[ " ${steps[*]} " == *" pytest "* ]] && [ -z "${VB_TEST_SERIAL:-}" ]; then
  (
    t0=$SECONDS
    step_pytest >"$tmp/pytest.log" 2>&1
    echo $? >"$tmp/pytest.rc"
    echo $((SECONDS - t0)) >"$tmp/pytest.took"
  ) &
  bg=$!
  echo "== pytest: running beside the other steps (output when they are done)"
fi

for s in "${steps[@]}"; do
  if [ "$s" = pytest ] && [ -n "$bg" ]; then
    continue
  fi
  echo "== $s"
  t0=$SECONDS
  if "step_$s"; then result[$s]=ok; else result[$s]=FAIL; fi
  took[$s]=$((SECONDS - t0))
  echo "== $s: ${result[$s]} (${took[$s]} s)"
done

if [ -n "$bg" ]; then
  wait "$bg"
  bg=
  echo "== pytest (ran beside the other steps)"
  cat "$tmp/pytest.log"
  if [ "$(cat "$tmp/pytest.rc" 2>/dev/null)" = 0 ]; then result[pytest]=ok; else result[pytest]=FAIL; fi
  took[pytest]=$(cat "$tmp/pytest.took" 2>/dev/null || echo '?')
  echo "== pytest: ${result[pytest]} (${took[pytest]} s)"
fi

passed=0 failed=0
echo
echo "== summary (wall $((SECONDS - start)) s)"
for s in "${steps[@]}"; do
  printf '   %-4s  %-12s %5s s\n' "${result[$s]}" "$s" "${took[$s]}"
  if [ "${result[$s]}" = ok ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
if [ $failed -gt 0 ]; then
  echo "   failed: $(for s in "${steps[@]}"; do [ "${result[$s]}" = ok ] || printf '%s ' "$s"; done)"
fi
echo "steps: $passed passed, $failed failed"
[ $failed -eq 0 ]
