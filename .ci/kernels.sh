#!/usr/bin/env bash
# Kernel tests on every instruction-set path.
#  x86: builds tests/DeepSeekCpu.Kernels.Tests once and re-runs it in child processes with ISAs switched off
#       (DOTNET_EnableAVX512=0, DOTNET_EnableAVXVNNI=0, DOTNET_EnableAVX2=0, DOTNET_EnableHWIntrinsic=0).
#  ARM64: publishes it self-contained for linux-arm64 and runs it under qemu-aarch64-static with and without the
#       dot-product extension (DOTNET_EnableArm64Dp=0). qemu and an arm64 sysroot are set up by .ci/arm64-sysroot.sh
#       (cached under .tools/). Skip with KERNELS_SKIP_ARM=1.
# Each run sets DEEPSEEKCPU_EXPECT_PATH, derived here from /proc/cpuinfo (not from .NET), and a test asserts that the
# kernels really chose that path. Prints per-configuration counts and a final "N passed, N failed"; exits non-zero on
# any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
proj=tests/DeepSeekCpu.Kernels.Tests
tools=.tools
total_pass=0
total_fail=0

summarize() { # name expected-path rc output-file
  local name=$1 expect=$2 rc=$3 out=$4 line t e f s pass fail
  line=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -E 'Total: [0-9]+, Errors: [0-9]+, Failed: [0-9]+, Skipped: [0-9]+' | tail -1)
  if [[ -z "$line" ]]; then
    pass=0; fail=1
    echo "--- $name: no test summary (exit code $rc); last lines:"; tail -20 "$out"
  else
    t=$(sed -E 's/.*Total: ([0-9]+).*/\1/' <<<"$line"); e=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
    f=$(sed -E 's/.*Failed: ([0-9]+).*/\1/' <<<"$line"); s=$(sed -E 's/.*Skipped: ([0-9]+).*/\1/' <<<"$line")
    pass=$((t - e - f - s)); fail=$((e + f))
    if [[ $rc -ne 0 && $fail -eq 0 ]]; then fail=1; fi
    if [[ $fail -ne 0 ]]; then sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -A6 '\[FAIL\]' | head -60; fi
  fi
  printf '%-34s %-10s %4d passed, %d failed\n' "$name" "$expect" "$pass" "$fail"
  total_pass=$((total_pass + pass)); total_fail=$((total_fail + fail))
}

run() { # name expected-path command...
  local name=$1 expect=$2 out rc
  shift 2
  out=$(mktemp)
  DEEPSEEKCPU_EXPECT_PATH=$expect "$@" >"$out" 2>&1
  rc=$?
  summarize "$name" "$expect" "$rc" "$out"
  rm -f "$out"
}

has() { grep -m1 '^flags' /proc/cpuinfo | grep -qw "$1"; }

# ---------- x86 (or whatever this machine is) ----------
if ! dotnet build "$proj" -c Release -v q --nologo >/tmp/kernels-build.log 2>&1; then
  cat /tmp/kernels-build.log; echo "0 passed, 1 failed"; exit 1
fi
exe="$proj/bin/Release/net10.0/DeepSeekCpu.Kernels.Tests"
arch=$(uname -m)
if [[ "$arch" == "x86_64" ]]; then
  avx2=scalar; { has avx2 && has fma; } && avx2=avx2
  vnni=$avx2; [[ $avx2 == avx2 ]] && has avx_vnni && vnni=avx2-vnni
  best=$vnni; [[ $avx2 == avx2 ]] && has avx512bw && has avx512vl && best=avx512
  run "x86 default"                         "$best"  env "$exe"
  # the AVX-512 path must not depend on AVX-VNNI (Skylake-X/Cascade Lake have AVX-512 without it)
  [[ $best == avx512 ]] && run "x86 DOTNET_EnableAVXVNNI=0"   avx512   env DOTNET_EnableAVXVNNI=0 "$exe"
  run "x86 DOTNET_EnableAVX512=0"           "$vnni"  env DOTNET_EnableAVX512=0 "$exe"
  run "x86 AVX512=0 AVXVNNI=0"              "$avx2"  env DOTNET_EnableAVX512=0 DOTNET_EnableAVXVNNI=0 "$exe"
  run "x86 DOTNET_EnableAVX2=0"             scalar   env DOTNET_EnableAVX2=0 "$exe"
  run "x86 DOTNET_EnableHWIntrinsic=0"      scalar   env DOTNET_EnableHWIntrinsic=0 "$exe"
elif [[ "$arch" == "aarch64" ]]; then
  dp=neon; grep -m1 -E '^Features' /proc/cpuinfo | grep -qw asimddp && dp=neon-dp
  run "arm64 default"                       "$dp"    env "$exe"
  run "arm64 DOTNET_EnableArm64Dp=0"        neon     env DOTNET_EnableArm64Dp=0 "$exe"
  run "arm64 DOTNET_EnableHWIntrinsic=0"    scalar   env DOTNET_EnableHWIntrinsic=0 "$exe"
fi

# ---------- ARM64 under qemu ----------
if [[ "$arch" == "x86_64" && "${KERNELS_SKIP_ARM:-0}" != "1" ]]; then
  sysroot="$tools/arm64-sysroot"
  pub="$tools/kernels-tests-arm64"
  if ! .ci/arm64-sysroot.sh "$sysroot" >/tmp/kernels-sysroot.log 2>&1; then
    cat /tmp/kernels-sysroot.log; total_fail=$((total_fail + 1)); echo "arm64 setup failed"
  elif ! dotnet publish "$proj" -c Release -r linux-arm64 --self-contained -o "$pub" -v q --nologo >/tmp/kernels-publish.log 2>&1; then
    cat /tmp/kernels-publish.log; total_fail=$((total_fail + 1)); echo "arm64 publish failed"
  else
    # qemu's default CPU model ("max") has the dot-product extension.
    # DOTNET_EnableWriteXorExecute=0: with W^X the runtime writes JIT code through a second mapping of the same pages,
    # which qemu-user's translation cache does not always notice; runs then fail at random (NullReferenceException in
    # reflection stubs, aborts, hangs: seen here in about half the runs). Without W^X: 8 of 8 runs clean.
    # timeout: a hung emulated process must not hang CI.
    run "arm64/qemu default"                neon-dp  env DOTNET_EnableWriteXorExecute=0 timeout 900 qemu-aarch64-static -L "$sysroot" "$pub/DeepSeekCpu.Kernels.Tests"
    run "arm64/qemu DOTNET_EnableArm64Dp=0" neon     env DOTNET_EnableWriteXorExecute=0 DOTNET_EnableArm64Dp=0 timeout 900 qemu-aarch64-static -L "$sysroot" "$pub/DeepSeekCpu.Kernels.Tests"
  fi
fi

echo "$total_pass passed, $total_fail failed"
[[ $total_fail -eq 0 ]]
