#!/usr/bin/env bash
# Coverage-guided fuzzing of every reader of files and requests that come from strangers (issue 11), with SharpFuzz
# (NuGet: the library and the `sharpfuzz` instrumenting tool) and AFL++ (Debian's afl++). Not part of ./test.sh: the
# inputs it finds that crash are kept in tests/fuzz-corpus/TARGET/, which the normal test suite replays
# (FuzzCorpusTests).
#
#   tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      default: 300 seconds for each of the 8 targets
#   FUZZ_RESUME=1 tools/fuzz.sh 300 gguf                 go on from the queue of the last run instead of the seeds
#   FUZZ_KEEP=1 tools/fuzz.sh 3600 gguf                  and keep the queue in tests/fuzz-corpus/queues (commit it)
#   tools/fuzz.sh --stability gguf                       which branches of the target vary between runs of the same
#                                                        input (AFL's stability under 100%), over seeds and kept queue
#
# Targets (tests/DeepSeekCpu.Tests/Hardening/FuzzTargets.cs): gguf safetensors safetensors-index tokenizer-json
# config-json llama2c-checkpoint llama2c-tokenizer server-request.
# A crash is any exception other than the readers' clean one-line errors, a run over 5 s (hang), or an allocation
# beyond a 1 GiB GC heap. Findings land in artifacts/fuzz/findings/TARGET (AFL's layout); crashes and hangs are
# replayed at the end, so their messages and stacks are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

stability=0
if [ "${1:-}" = --stability ]; then stability=1; shift; set -- 0 "$@"; fi
seconds=${1:-300}; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf safetensors safetensors-index tokenizer-json config-json llama2c-checkpoint llama2c-tokenizer server-request)
work=artifacts/fuzz
bin=$work/bin       # instrumented: only runs under afl-fuzz (its coverage map is AFL's shared memory)
plain=$work/plain   # the same build uninstrumented: seeds and replays

# 1. AFL++ and the SharpFuzz instrumenting tool
if ! command -v afl-fuzz >/dev/null; then
  echo "== installing afl++"
  apt-get install -y afl++ >/dev/null || { apt-get update >/dev/null && apt-get install -y afl++ >/dev/null; }
fi
if [ ! -x .tools/sharpfuzz ]; then
  echo "== installing SharpFuzz.CommandLine"
  dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path .tools >/dev/null
fi

# 2. build, then instrument the project's own assemblies (not the target program, SharpFuzz or the framework)
echo "== build and instrument"
rm -rf "$bin" "$plain"
dotnet publish tools/DeepSeekCpu.Fuzz -c Release -o "$plain" -v minimal -clp:ErrorsOnly | grep -v "^$" || true
[ -f "$plain/DeepSeekCpu.Fuzz.dll" ] || { echo "build failed"; exit 1; }
cp -r "$plain" "$bin"
for dll in DeepSeekCpu.dll DeepSeekCpu.Tokenizers.dll DeepSeekCpu.Server.dll; do
  .tools/sharpfuzz "$bin/$dll" >/dev/null
done

# 3. seed corpora: small valid files written by the formats' writers and the project's fixtures
rm -rf "$work/seeds"
dotnet "$plain/DeepSeekCpu.Fuzz.dll" seeds "$work/seeds"
# 3a. the kept queues (tests/fuzz-corpus/queues/TARGET.tar.gz): every input earlier runs found to reach new coverage,
# on earlier machines too, joins the seeds, so a fresh machine goes on where the last run stopped. FUZZ_KEEP=1 writes
# the queue back at the end of a run (step 4); FuzzCorpusTests replays every kept input in the normal test suite.
queues=tests/fuzz-corpus/queues
for t in "${targets[@]}"; do
  if [ -f "$queues/$t.tar.gz" ]; then tar xzf "$queues/$t.tar.gz" -C "$work/seeds/$t" --transform 's|^|kept-|'; fi
done

# 3a'. --stability: a copy whose every branch reports its method (SharpFuzz's on-branch callback) runs each input
# four times (the Fuzz program's `stability` mode) and names the methods whose branches took another course
if [ $stability = 1 ]; then
  rm -rf "$work/stability"; cp -r "$plain" "$work/stability"
  for dll in DeepSeekCpu.dll DeepSeekCpu.Tokenizers.dll DeepSeekCpu.Server.dll; do
    SHARPFUZZ_ENABLE_ON_BRANCH_CALLBACK=1 .tools/sharpfuzz "$work/stability/$dll" >/dev/null
  done
  for t in "${targets[@]}"; do
    echo "== stability of $t"
    DOTNET_TieredCompilation=0 dotnet "$work/stability/DeepSeekCpu.Fuzz.dll" stability "$t" "$work/seeds/$t"/*
  done
  exit 0
fi

# 3b. dictionaries: the string literals of each reader's sources (metadata keys, tensor names, JSON fields, dtype
# names), so AFL splices whole names instead of finding them a byte at a time (the coverage map sees a key only once
# it matches). For GGUF also each key behind its u64 length (GGUF v3: strings are a u64 length then the bytes), and the
# architecture-prefixed keys ("{arch}.attention.head_count").
literals() { grep -rhoE '"[^"\\{}]{2,60}"' --include='*.cs' "$@" | sed 's/^"//; s/"$//' | grep -v '[[:cntrl:][:space:]+$]' | sort -u; }   # names, not messages
# AFL's dictionary lines: "..." with every byte outside printable ASCII, and " and \, as \xNN (afl++ 4.04 repeats its
# non-printable warning without end on a raw UTF-8 byte: a 20 GB log in minutes)
# `quoted gguf` puts each word behind its u64 little-endian byte length, as GGUF stores strings.
quoted() { LC_ALL=C perl -ne 'chomp; $_ = pack("Q<", length) . $_ if "'"${1:-}"'" eq "gguf";
  s/([^\x20-\x7e]|["\\])/sprintf("\\x%02x", ord($1))/ge; print "\"$_\"\n"'; }
dict() {   # dict TARGET -> artifacts/fuzz/dict/TARGET.dict (empty for the binary llama2.c formats)
  local t=$1 d=$work/dict/$1.dict s=src/DeepSeekCpu
  mkdir -p "$work/dict"
  case $t in
    gguf)
      local files; files=$(grep -rlE 'Gguf|gguf|"blk' --include='*.cs' $s src/DeepSeekCpu.Tokenizers | grep -v /obj/)
      { literals $files
        for a in $(literals $files | grep -xE 'deepseek[0-9]*|qwen[0-9]*|llama[0-9]*'); do
          literals $files | grep -E '^(attention|rope|expert|hyper_connection|nextn|leading|block_count|context_length|embedding_length|feed_forward_length|vocab_size)' | sed "s/^/$a./"
        done; } | sort -u > "$d.words"
      quoted < "$d.words" > "$d"
      quoted gguf < "$d.words" >> "$d"
      rm "$d.words" ;;
    safetensors|safetensors-index) literals $s/Formats $s/Weights | quoted > "$d" ;;
    tokenizer-json) literals src/DeepSeekCpu.Tokenizers $s/Tokenization | quoted > "$d" ;;
    config-json) literals $s/Models | quoted > "$d" ;;
    server-request) literals src/DeepSeekCpu.Server $s/Generation | quoted > "$d" ;;
    *) : > "$d" ;;
  esac
  [ -s "$d" ] && echo "-x $d" || true
}

# 4. each target in turn, for a bounded time, at low priority (the machine is shared)
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export DOTNET_GCHeapHardLimit=0x40000000 DOTNET_TieredCompilation=0
summary=()
for t in "${targets[@]}"; do
  echo "== fuzzing $t for $seconds s"
  out=$work/findings/$t
  input=$work/seeds/$t
  if [ "${FUZZ_RESUME:-0}" = 1 ] && [ -d "$out/default/queue" ]; then input=-; export AFL_AUTORESUME=1; else rm -rf "$out"; fi
  mkdir -p "$work/findings"
  nice -n 10 afl-fuzz -V "$seconds" -t 5000 -m none $(dict "$t") -i "$input" -o "$out" -- dotnet "$bin/DeepSeekCpu.Fuzz.dll" "$t" \
    > "$work/$t.log" 2>&1 || { echo "afl-fuzz failed, see $work/$t.log"; tail -20 "$work/$t.log"; exit 1; }
  stats=$out/default/fuzzer_stats
  get() { grep -E "^$1 " "$stats" | sed -E 's/.*: //'; }
  last=$(get last_find); end=$(get last_update)
  since=$([ "$last" = 0 ] && echo "-" || echo "$((end - last)) s")
  # executions since the corpus last grew, from AFL's plot_data (columns: corpus_count 4th, total_execs 12th): on a
  # shared machine the seconds since the last new path say little, the executions say how hard it was looked for.
  # A new path is also a new hit count (AFL's buckets 1, 2, 3, 4-7, ... 128+) of an edge already seen; edges_found
  # (13th column) counts distinct edges, so the executions since it last grew measure the plateau of coverage itself.
  dry=$(awk -F', ' 'NR > 1 { if ($4 != c) { c = $4; e = $12 } n = $12 } END { print n - e }' "$out/default/plot_data")
  edry=$(awk -F', ' 'NR > 1 { if ($13 != c) { c = $13; e = $12 } n = $12 } END { print c " edges, last new " n - e }' "$out/default/plot_data")
  summary+=("$(printf '%-20s %6s s  %9s execs  %5s paths  last new path %6s ago, %9s execs ago  %s execs ago  crashes %s  hangs %s' \
    "$t" "$(get run_time)" "$(get execs_done)" "$(get corpus_count)" "$since" "$dry" "$edry" "$(get saved_crashes)" "$(get saved_hangs)")")
  if [ "${FUZZ_KEEP:-0}" = 1 ]; then   # the queue (seeds included) under content names, reproducibly archived
    keep=$(mktemp -d)
    # the kept inputs stay too (a FUZZ_RESUME run starts from its old findings, which may lack them); content names dedupe
    if [ -f "$queues/$t.tar.gz" ]; then tar xzf "$queues/$t.tar.gz" -C "$keep"; fi
    for f in "$out"/default/queue/id*; do cp "$f" "$keep/$(sha1sum < "$f" | cut -c1-16)"; done
    mkdir -p "$queues"
    (cd "$keep" && ls | LC_ALL=C sort | tar cf - --owner=0 --group=0 --numeric-owner --mtime=@0 --mode=644 -T - | gzip -9n) > "$queues/$t.tar.gz"
    echo "kept $(ls "$keep" | wc -l) inputs in $queues/$t.tar.gz ($(stat -c %s "$queues/$t.tar.gz") bytes)"
    rm -rf "$keep"
  fi
  for kind in crashes hangs; do
    files=("$out"/default/$kind/id*)
    [ -e "${files[0]}" ] || continue
    echo "-- $t $kind (replayed without AFL):"
    dotnet "$plain/DeepSeekCpu.Fuzz.dll" replay "$t" "${files[@]}" | head -60 || true
  done
done

echo "== summary (target, time, executions, corpus paths, time and executions since the last new path, distinct edges and executions since the last new edge, crashes, hangs)"
printf '%s\n' "${summary[@]}"
