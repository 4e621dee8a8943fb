#!/usr/bin/env bash
# The README's comparison with llama.cpp and ik_llama.cpp (Performance, "Beside the peers"), rerun in one sitting.
# Every table comes from `deepseek-cpu bench --llama-bench/--ik-bench/--batched-bench`, which runs our bench and the
# peers' alternately (ours first in even rounds, last in odd ones) and prints medians, ratios and roofline shares.
#
#   bench/compare.sh LLAMA_CPP_BIN IK_LLAMA_CPP_BIN MODELS_DIR [OUT_DIR]
#
# LLAMA_CPP_BIN, IK_LLAMA_CPP_BIN: the build/bin folders of your own CPU builds of llama.cpp and ik_llama.cpp (with
# llama-bench, and llama-batched-bench for llama.cpp; this project ships and fetches neither); IK_LLAMA_CPP_BIN "none"
# leaves ik_llama.cpp out. MODELS_DIR holds the GGUF files
# written by `synth` (README, Performance): q15-q4_0.gguf, q15-q8_0.gguf, q15-q4_k.gguf, q15-q4_k_m.gguf (R1-Distill-Qwen-1.5B shape)
# and v2l-q4_0.gguf (DeepSeek-V2-Lite); a missing file is skipped with a note. OUT_DIR (default ./compare-out) gets
# one .md per table. Environment: DSC (our binary; default the Release build of this checkout), MODELS (the five
# above), THREADS (2),
# ROUNDS (3), REPS (1), DEPTHS (1024,4096), DEPTH_MODELS (q15-q4_0 v2l-q4_0), TG_DEPTH (32), BATCHES (1,2,4,8),
# TG_BATCH (32), PP_LONG (4096), PARTS (all of: pptg depth batched; and long: one prompt of PP_LONG tokens per
# DEPTH_MODELS file, the peers with flash attention).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; fi
llama="$1"; ik="$2"; models="$3"; out="${4:-compare-out}"
DSC="${DSC:-src/DeepSeekCpu.Cli/bin/Release/net10.0/deepseek-cpu}"
THREADS="${THREADS:-2}"; ROUNDS="${ROUNDS:-3}"; REPS="${REPS:-1}"
MODELS="${MODELS:-q15-q4_0 q15-q8_0 q15-q4_k q15-q4_k_m v2l-q4_0}"
DEPTHS="${DEPTHS:-1024,4096}"; DEPTH_MODELS="${DEPTH_MODELS:-q15-q4_0 v2l-q4_0}"; TG_DEPTH="${TG_DEPTH:-32}"
BATCHES="${BATCHES:-1,2,4,8}"; TG_BATCH="${TG_BATCH:-32}"; PARTS="${PARTS:-pptg depth batched}"; PP_LONG="${PP_LONG:-4096}"

missing=0
iks=("$ik/llama-bench"); [ "$ik" = none ] && iks=()   # IK_LLAMA_CPP_BIN "none": llama.cpp only
for f in "$DSC" "$llama/llama-bench" "$llama/llama-batched-bench" "${iks[@]}"; do
  if [ ! -x "$f" ]; then echo "missing: $f (build it first; see README, Performance)" >&2; missing=1; fi
done
[ -d "$models" ] || { echo "missing: models folder $models" >&2; missing=1; }
[ "$missing" = 0 ] || exit 2
mkdir -p "$out"

run() { # name, then the bench arguments; prints the command and keeps the table in $out/name.md
  local name="$1"; shift
  echo "== $name: $DSC bench $*" | tee "$out/$name.md"
  "$DSC" bench "$@" | tee -a "$out/$name.md"
}

date -u +"started %F %T UTC"
for part in $PARTS; do
  case "$part" in
    pptg)
      for m in $MODELS; do
        f="$models/$m.gguf"; [ -f "$f" ] || { echo "skipped: $f not found"; continue; }
        run "pptg-$m" -m "$f" -p 512 -n 128 -t "$THREADS" -r "$REPS" --rounds "$ROUNDS" \
          --llama-bench "$llama/llama-bench" ${iks[@]:+--ik-bench "${iks[0]}"}
      done ;;
    depth)  # decoding after DEPTH tokens of context, beside llama.cpp with flash attention
      for m in $DEPTH_MODELS; do
        f="$models/$m.gguf"; [ -f "$f" ] || { echo "skipped: $f not found"; continue; }
        run "depth-$m" -m "$f" -p 0 -n "$TG_DEPTH" -d "$DEPTHS" -t "$THREADS" -r "$REPS" --rounds "$ROUNDS" \
          --llama-bench "$llama/llama-bench" --peer-args "-fa 1"
      done ;;
    long)  # one long prompt (prefill dominated by attention at this length), beside the peers with flash attention
      for m in $DEPTH_MODELS; do
        f="$models/$m.gguf"; [ -f "$f" ] || { echo "skipped: $f not found"; continue; }
        run "long-$m" -m "$f" -p "$PP_LONG" -n 0 -t "$THREADS" -r "$REPS" --rounds "$ROUNDS" \
          --llama-bench "$llama/llama-bench" ${iks[@]:+--ik-bench "${iks[0]}"} --peer-args "-fa 1"
      done ;;
    batched)  # aggregate tokens/s of B sequences decoded together, beside llama-batched-bench
      f="$models/q15-q4_0.gguf"; [ -f "$f" ] || { echo "skipped: $f not found"; continue; }
      run "batched-q15-q4_0" -m "$f" -n "$TG_BATCH" -b "$BATCHES" -t "$THREADS" -r "$REPS" --rounds "$ROUNDS" \
        --batched-bench "$llama/llama-batched-bench" ;;
    *) echo "unknown part '$part' (expected pptg, depth or batched)" >&2; exit 2 ;;
  esac
done
date -u +"finished %F %T UTC"
