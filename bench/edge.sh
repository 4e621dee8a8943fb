#!/usr/bin/env bash
# Edge measurements (issue 15): cold start, peak resident memory and sizes of the JIT and native AOT builds.
#   bench/edge.sh [-r REPS] [--q15 FILE.gguf] [--no-arm] [--no-build]
# Builds (into artifacts/edge/): the JIT build as the .NET tool ships it (framework-dependent, no torch backend),
# the native AOT binaries for linux-x64 and linux-arm64 (build/publish-aot.sh), and a self-contained JIT build for
# linux-arm64 (the qemu check of the JIT path).
# Measures, per x86-64 build and model, REPS runs alternating JIT and AOT (medians printed):
#   cold start = wall time of a new process that loads the model, reads the prompt and prints ONE token
#                (`run -n 1 --temp 0`: process start to first token, plus an exit), page cache warm (the file was
#                read before: a first read from disk depends on the disk, not on the build);
#   peak RSS   = the process's maximum resident set (/usr/bin/time %M), memory-mapped weights included.
# Models: the demo (stories260K, bundled) and the R1-Distill-Qwen-1.5B shape in Q4_0 (synthetic, random weights, no
# vocabulary: `synth --shape qwen2-1.5b --type q4_0`; the R1 distill tokenizer fixture is given with --tokenizer).
# arm64: the binaries run under qemu-aarch64-static for CORRECTNESS ONLY (their output must equal x86-64's);
# their speed under emulation says nothing about Arm hardware and is not measured.
# The host is shared (other builds, a fuzzer): times are noisy; compare ratios measured in one sitting.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=3; arm=1; build=1
q15=/work/peers/models/q15-q4_0.gguf; [ -f "$q15" ] || q15=/work/bench-models/q15-q4_0.gguf   # this machine's copies
while [ $# -gt 0 ]; do
  case "$1" in
    -r) reps=$2; shift 2 ;;
    --q15) q15=$2; shift 2 ;;
    --no-arm) arm=0; shift ;;
    --no-build) build=0; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
edge=artifacts/edge
jit=$edge/jit-x64; aot=$edge/aot-x64; aot_arm=$edge/aot-arm64; jit_arm=$edge/jit-arm64
tok=tests/fixtures/tokenizers/r1-distill-qwen
demo_args=(run -p "Once upon a time" --temp 0 --no-stats)
q15_args=(run -m "$q15" --tokenizer "$tok" -p "Hello" --raw --temp 0 --no-stats)
# the JIT publishes without torch build in their own folders, not in the bin/ and obj/ of the CLI built from source
q=(-v quiet -clp:ErrorsOnly --nologo --artifacts-path artifacts/edge-build)

if [ $build = 1 ]; then
  echo "building (JIT, AOT x64$([ $arm = 1 ] && echo ', AOT and JIT arm64'), packages)" >&2
  dotnet pack DeepSeekCpu.sln -c Release -o artifacts/packages -v quiet -clp:ErrorsOnly --nologo >&2   # the sizes table
  dotnet publish src/DeepSeekCpu.Cli -c Release -p:TorchBackend=false -o "$jit" "${q[@]}"
  build/publish-aot.sh linux-x64 "$aot" | grep -E "warning|error" >&2 || true
  if [ $arm = 1 ]; then
    build/publish-aot.sh linux-arm64 "$aot_arm" | grep -E "warning|error" >&2 || true
    dotnet publish src/DeepSeekCpu.Cli -c Release -r linux-arm64 --self-contained -p:TorchBackend=false -o "$jit_arm" "${q[@]}"
  fi
fi

mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
size_without_models() { du -sb --exclude=models "$1" | cut -f1; }
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "## sizes"
echo "| what | size |"
echo "|---|---:|"
for p in artifacts/packages/deepseek-cpu.*.nupkg; do [ -f "$p" ] && echo "| tool package $(basename "$p") (demo model 1.1 MB inside) | $(mb "$(stat -c %s "$p")") |"; done
echo "| JIT build (framework-dependent, as the tool installs it; needs the .NET 10 + ASP.NET Core runtimes) | $(mb "$(size_without_models "$jit")") |"
echo "| native AOT linux-x64: deepseek-cpu (+ deepseek-cpu.dbg symbols $(mb "$(stat -c %s "$aot/deepseek-cpu.dbg")")) | $(mb "$(stat -c %s "$aot/deepseek-cpu")") |"
if [ $arm = 1 ]; then
  echo "| native AOT linux-arm64: deepseek-cpu | $(mb "$(stat -c %s "$aot_arm/deepseek-cpu")") |"
  echo "| JIT linux-arm64, self-contained (runtime included) | $(mb "$(size_without_models "$jit_arm")") |"
fi
for p in artifacts/packages/DeepSeekCpu*.nupkg; do [ -f "$p" ] && echo "| $(basename "$p") | $(mb "$(stat -c %s "$p")") |"; done

measure() { # label binary args... → "wall_s rss_kb" per run into a file, stdout of the last run kept
  local out=$1; shift
  /usr/bin/time -f '%e %M' -o "$out.time" "$@" >"$out.txt" 2>"$out.err" || { cat "$out.err" >&2; return 1; }
  cat "$out.time" >>"$out.runs"
}

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
models=(demo); [ -f "$q15" ] && models+=(q15) || echo "($q15 not found: the 1.5B rows are left out)" >&2
[ -f "$q15" ] && cat "$q15" >/dev/null   # page cache warm for every build alike
echo
echo "## cold start and memory, x86-64 ($reps runs each, alternating, medians)"
echo "| model | build | process start → first token | peak RSS |"
echo "|---|---|---:|---:|"
for m in "${models[@]}"; do
  if [ "$m" = demo ]; then args=("${demo_args[@]}"); else args=("${q15_args[@]}"); fi
  for ((i = 0; i < reps; i++)); do
    measure "$tmp/$m-jit" "$jit/deepseek-cpu" "${args[@]}" -n 1
    measure "$tmp/$m-aot" "$aot/deepseek-cpu" "${args[@]}" -n 1
  done
  for b in jit aot; do
    s=$(cut -d' ' -f1 "$tmp/$m-$b.runs" | median); kb=$(cut -d' ' -f2 "$tmp/$m-$b.runs" | median)
    echo "| $m | $([ $b = jit ] && echo JIT || echo 'native AOT') | ${s} s | $(awk -v k="$kb" 'BEGIN { printf "%.0f MB", k / 1024 }') |"
  done
  cmp -s "$tmp/$m-jit.txt" "$tmp/$m-aot.txt" || { echo "JIT and AOT printed different tokens for $m" >&2; exit 1; }
done

if [ $arm = 1 ]; then
  echo
  echo "## arm64 under qemu (correctness only: speed under emulation is not measured)"
  .ci/arm64-sysroot.sh .tools/arm64-sysroot >/dev/null
  sysroot=.tools/arm64-sysroot
  "$jit/deepseek-cpu" "${demo_args[@]}" -n 40 >"$tmp/x64.txt"
  for b in aot jit; do
    dir=$aot_arm; [ $b = jit ] && dir=$jit_arm
    qemu-aarch64-static -L "$sysroot" "$dir/deepseek-cpu" "${demo_args[@]}" -n 40 >"$tmp/arm-$b.txt" 2>"$tmp/arm-$b.err" || cat "$tmp/arm-$b.err" >&2
    cmp -s "$tmp/x64.txt" "$tmp/arm-$b.txt" && r="same 40 greedy tokens as x86-64" || r="DIFFERS from x86-64"
    echo "- demo, $([ $b = jit ] && echo 'JIT (self-contained)' || echo 'native AOT') linux-arm64: $r"
  done
  if [ -f "$q15" ]; then
    "$jit/deepseek-cpu" "${q15_args[@]}" -n 1 >"$tmp/x64-q15.txt"
    qemu-aarch64-static -L "$sysroot" "$aot_arm/deepseek-cpu" "${q15_args[@]}" -n 1 >"$tmp/arm-q15.txt" 2>"$tmp/arm-q15.err" || cat "$tmp/arm-q15.err" >&2
    cmp -s "$tmp/x64-q15.txt" "$tmp/arm-q15.txt" && r="same first greedy token as x86-64" || r="DIFFERS from x86-64"
    echo "- 1.5B Q4_0, native AOT linux-arm64: $r"
  fi
fi
