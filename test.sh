#!/usr/bin/env bash
# Runs every test of the project and ends with one line "N passed, N failed".
#  1. the main test suite (tests/DeepSeekCpu.Tests: formats, tokenizers, models against reference logits, CLI), and its
#     model-level tests again with DOTNET_EnableAVX512=0 (the AVX2 path) where AVX-512 is the default;
#  2. build/check-packages.sh: dotnet pack, the deepseek-cpu tool installed from the packages, samples/ run on them;
#  3. the kernel tests on every instruction-set path this machine can run (.ci/kernels.sh: AVX-512, AVX2, SSE-only
#     and scalar in child processes, NEON with and without DotProd under qemu).
# Exits non-zero if any test failed or no test ran.
set -uo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

passed=0; failed=0; status=0

# The chat page's browser tests (tests/DeepSeekCpu.Tests/Serving/ChatPageTests.cs) drive Debian's chromium through
# Playwright; install it when missing (CI runs as root). If it cannot be installed, those tests fail and say why.
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  echo "== installing chromium for the chat page tests"
  (export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq chromium || { apt-get update -qq && apt-get install -y -qq chromium; }) >/dev/null 2>&1 \
    || echo "could not install chromium: the chat page tests will fail"
fi

echo "== build"
if ! dotnet build DeepSeekCpu.sln -c Release -v minimal -clp:ErrorsOnly; then
  echo "build failed"; echo "0 passed, 1 failed"; exit 1
fi

# Runs one xUnit v3 test executable and adds its counts. Its summary line reads
# "NAME  Total: N, Errors: N, Failed: N, Skipped: N, Not Run: N, Time: ...".
run_suite() {
  local name="$1"; shift
  local log; log=$(mktemp)
  echo "== $name"
  "$@" 2>&1 | tee "$log" | grep -E "\[FAIL\]|Total: [0-9]+" || true
  local line total f e
  line=$(grep -oE 'Total: [0-9]+, Errors: [0-9]+, Failed: [0-9]+' "$log" | tail -1)
  total=$(echo "$line" | sed -E 's/Total: ([0-9]+).*/\1/')
  e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
  f=$(echo "$line" | sed -E 's/.*Failed: ([0-9]+).*/\1/')
  if [ -z "$line" ] || [ "$total" = "0" ]; then
    echo "$name: no tests ran"; failed=$((failed + 1)); status=1
  else
    local skipped notrun
    skipped=$(grep -oE 'Skipped: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+'); notrun=$(grep -oE 'Not Run: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    passed=$((passed + total - f - e - ${skipped:-0} - ${notrun:-0})); failed=$((failed + f + e))
    [ "$((f + e))" = "0" ] || status=1
  fi
  rm -f "$log"
}

run_suite "main tests" tests/DeepSeekCpu.Tests/bin/Release/net10.0/DeepSeekCpu.Tests

# The model-level tests (reference logits, agreement between engines) once more on the AVX2 path, on machines whose
# default is AVX-512: the kernel tests compare each body with the scalar reference, this runs the whole graph on the
# AVX2 bodies as an AVX2-only machine does (measured here: 265 tests, 60 s of CPU; the whole suite takes 142 s).
if grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | grep -qw avx512bw; then
  run_suite "model tests, DOTNET_EnableAVX512=0" env DOTNET_EnableAVX512=0 tests/DeepSeekCpu.Tests/bin/Release/net10.0/DeepSeekCpu.Tests \
    -namespace DeepSeekCpu.Tests.Models -namespace DeepSeekCpu.Tests.DeepSeek -namespace DeepSeekCpu.Tests.Torch
fi

# the packages as a user gets them: dotnet pack, the .NET tool installed and run, samples/ built on the packages
if [ -x build/check-packages.sh ]; then
  echo "== packages, the .NET tool and samples/"
  plog=$(mktemp)
  build/check-packages.sh 2>&1 | tee "$plog"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$plog" | tail -1)
  if [ -z "$line" ]; then echo "package check printed no summary"; failed=$((failed + 1)); status=1
  else passed=$((passed + ${line%% *})); failed=$((failed + $(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/'))); fi
  rm -f "$plog"
fi

if [ -x .ci/kernels.sh ]; then
  echo "== kernel tests on every instruction set"
  klog=$(mktemp)
  .ci/kernels.sh 2>&1 | tee "$klog"
  kstatus=${PIPESTATUS[0]}
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$klog" | tail -1)
  if [ -z "$line" ]; then
    echo "kernel tests printed no summary"; failed=$((failed + 1)); status=1
  else
    kp=$(echo "$line" | grep -oE '^[0-9]+'); kf=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    passed=$((passed + kp)); failed=$((failed + kf))
  fi
  [ "$kstatus" = "0" ] || status=1
  rm -f "$klog"
fi

echo "$passed passed, $failed failed"
[ "$failed" = "0" ] || status=1
exit $status
