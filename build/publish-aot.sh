#!/usr/bin/env bash
# The native AOT binary of deepseek-cpu (issue 15): build/publish-aot.sh [linux-x64|linux-arm64] [OUT_DIR]
# (default: this machine's RID, artifacts/aot/RID). OUT_DIR gets one executable, deepseek-cpu (needs only libc and
# libm), its symbols (deepseek-cpu.dbg) and the demo model (models/stories260K). No .NET runtime is needed to run it.
#
# Needs clang (the linker driver .NET's ILCompiler calls) and, for linux-arm64 on an x86-64 host, Debian's cross
# toolchain: gcc-aarch64-linux-gnu brings aarch64-linux-gnu-ld and an arm64 libc under /usr/aarch64-linux-gnu, which
# clang --target=aarch64-linux-gnu finds by itself. Both are installed with apt when missing. The ILCompiler packages
# (the host's compiler and the target's runtime libraries) are restored from NuGet by the publish.
# The publish builds under artifacts/aot-build/ (Directory.Build.props), so the bin/ and obj/ of the CLI built from
# source (with the torch backend) stay as they are.
# Check an arm64 binary here under qemu: qemu-aarch64-static -L /usr/aarch64-linux-gnu OUT_DIR/deepseek-cpu run
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(uname -m)
case "$host" in x86_64) host_rid=linux-x64 ;; aarch64) host_rid=linux-arm64 ;; *) echo "unsupported host $host" >&2; exit 2 ;; esac
rid=${1:-$host_rid}
out=${2:-artifacts/aot/$rid}
case "$rid" in linux-x64|linux-arm64) ;; *) echo "RID must be linux-x64 or linux-arm64, got '$rid'" >&2; exit 2 ;; esac

need=()
command -v clang >/dev/null || need+=(clang)
if [ "$rid" = linux-arm64 ] && [ "$host_rid" = linux-x64 ] && ! command -v aarch64-linux-gnu-ld >/dev/null; then
  need+=(gcc-aarch64-linux-gnu)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (apt)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/dev/null
fi

dotnet publish src/DeepSeekCpu.Cli -c Release -r "$rid" -p:PublishAot=true -o "$out" -v minimal -clp:NoSummary
ls -l "$out/deepseek-cpu"
