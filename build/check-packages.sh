#!/usr/bin/env bash
# Checks what `dotnet pack` makes, used as a user would use it (issue 15), and ends with "N passed, N failed":
#  1. packs the solution into artifacts/packages (--no-pack: check the packages already there) and checks each
#     library package: README, XML docs, the commit it was built from;
#  2. installs the deepseek-cpu .NET tool from that folder into a temporary tool path (`dotnet tool install
#     --tool-path`, the same as -g but private) and runs the offline demo greedily;
#  3. builds samples/DeepSeekCpu.Sample against the packages (samples/nuget.config; a private NuGet cache under
#     artifacts/, so a package repacked under the same version is never served stale) and runs it on the demo model;
#  4. runs the sample on a tiny R1-style model (synthetic random weights of the tiny-qwen2-r1 shape with the R1 distill
#     tokenizer and template, 27 MB, written by `deepseek-cpu-tools synth`): its prompt opens the reasoning, so the
#     sample must stream the reasoning (framed by <think> tags when piped) as the CLI does.
# The tool's and the sample's output must equal the CLI built from source (dotnet build src/DeepSeekCpu.Cli) on the
# same prompt: the demo model's greedy story, which tests/ checks against the Python reference, and the tiny R1's
# greedy reasoning.
set -uo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
pkgs=artifacts/packages
passed=0; failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed"; [ "$failed" = "0" ]; exit $?; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

prompt="Once upon a time"; tokens=40
model=models/stories260K/stories260K.bin
version=$(dotnet msbuild src/DeepSeekCpu/DeepSeekCpu.csproj -getProperty:Version 2>/dev/null | tr -d '[:space:]')
[ -n "$version" ] || version=0.1.0

if [ "${1:-}" != "--no-pack" ]; then
  rm -f "$pkgs"/*.nupkg "$pkgs"/*.snupkg
  if ! dotnet pack DeepSeekCpu.sln -c Release -o "$pkgs" -v minimal -clp:ErrorsOnly >"$tmp/pack.log" 2>&1; then
    cat "$tmp/pack.log"; bad "dotnet pack"; finish
  fi
fi

# 1. the library packages: README, XML docs of the public API, the commit in the nuspec
lib_ok=1
for id in DeepSeekCpu DeepSeekCpu.Tokenizers DeepSeekCpu.Hub DeepSeekCpu.Runtime DeepSeekCpu.Extensions.AI DeepSeekCpu.Torch; do
  nupkg="$pkgs/$id.$version.nupkg"
  if [ ! -f "$nupkg" ]; then echo "  missing $nupkg"; lib_ok=0; continue; fi
  list=$(unzip -Z1 "$nupkg")
  for f in README.md "lib/net10.0/$id.dll" "lib/net10.0/$id.xml"; do
    grep -qx "$f" <<<"$list" || { echo "  $nupkg has no $f"; lib_ok=0; }
  done
  unzip -p "$nupkg" "$id.nuspec" | grep -qE '<repository [^>]*commit="[0-9a-f]{40}"' || { echo "  $nupkg: no commit in <repository>"; lib_ok=0; }
done
[ $lib_ok = 1 ] && ok "library packages (README, XML docs, commit)" || bad "library packages"

# the reference: the CLI built from source
cli=src/DeepSeekCpu.Cli/bin/Release/net10.0/deepseek-cpu.dll
[ -f "$cli" ] || dotnet build src/DeepSeekCpu.Cli -c Release -v minimal -clp:ErrorsOnly >/dev/null
dotnet "$cli" run -p "$prompt" --temp 0 -n $tokens --no-stats >"$tmp/expected.txt" 2>"$tmp/cli.err" \
  || { cat "$tmp/cli.err"; bad "reference run of the CLI"; finish; }

# 2. the .NET tool
if dotnet tool install deepseek-cpu --version "$version" --tool-path "$tmp/tools" --add-source "$pkgs" >"$tmp/tool.log" 2>&1 \
   && (cd "$tmp" && ./tools/deepseek-cpu run -p "$prompt" --temp 0 -n $tokens --no-stats >"$tmp/tool.txt" 2>"$tmp/tool.err"); then
  if cmp -s "$tmp/expected.txt" "$tmp/tool.txt"; then ok "dotnet tool install deepseek-cpu: demo output equals the CLI's"
  else bad "tool output differs from the CLI's"; diff "$tmp/expected.txt" "$tmp/tool.txt" | head; fi
else
  cat "$tmp/tool.log" "$tmp/tool.err" 2>/dev/null | tail -20; bad "dotnet tool install deepseek-cpu"
fi

# 3. the sample, on the packages
cache=artifacts/sample-nuget
rm -rf "$cache"/deepseekcpu*
sample=samples/DeepSeekCpu.Sample
if NUGET_PACKAGES="$PWD/$cache" dotnet build "$sample" -c Release -p:DeepSeekCpuVersion="$version" -v minimal -clp:ErrorsOnly --force >"$tmp/sample.log" 2>&1 \
   && dotnet "$sample/bin/Release/net10.0/DeepSeekCpu.Sample.dll" "$model" "$prompt" $tokens >"$tmp/sample.txt" 2>"$tmp/sample.err"; then
  if grep -q "Include=\"DeepSeekCpu" $sample/*.csproj && ! grep -q "ProjectReference" $sample/*.csproj \
     && [ -f "$cache/deepseekcpu.extensions.ai/$version/deepseekcpu.extensions.ai.$version.nupkg" ] \
     && cmp -s "$tmp/expected.txt" "$tmp/sample.txt"; then
    ok "samples/DeepSeekCpu.Sample on the packages: output equals the CLI's"
  else bad "sample output differs from the CLI's (or it did not restore the packages)"; diff "$tmp/expected.txt" "$tmp/sample.txt" | head; fi
else
  cat "$tmp/sample.log" "$tmp/sample.err" 2>/dev/null | tail -20; bad "sample build or run"
fi

# 4. the sample on a reasoning model: the reasoning streams, framed as the CLI frames it
synth=tools/DeepSeekCpu.Tools/bin/Release/net10.0/deepseek-cpu-tools
[ -x "$synth" ] || dotnet build tools/DeepSeekCpu.Tools -c Release -v minimal -clp:ErrorsOnly >/dev/null
r1="$tmp/tiny-r1.gguf"; question="How many r's are in strawberry?"
if "$synth" synth --shape tiny-qwen2-r1 --type q8_0 -o "$r1" --tokenizer tests/fixtures/tokenizers/r1-distill-qwen >"$tmp/synth.log" 2>&1 \
   && dotnet "$cli" run -m "$r1" -p "$question" --temp 0 -n $tokens --no-stats >"$tmp/r1-expected.txt" 2>"$tmp/r1-cli.err" \
   && dotnet "$sample/bin/Release/net10.0/DeepSeekCpu.Sample.dll" "$r1" "$question" $tokens >"$tmp/r1-sample.txt" 2>"$tmp/r1-sample.err"; then
  if head -1 "$tmp/r1-expected.txt" | grep -qx '<think>' && [ "$(wc -l <"$tmp/r1-expected.txt")" -gt 2 ] && cmp -s "$tmp/r1-expected.txt" "$tmp/r1-sample.txt"; then
    ok "samples/DeepSeekCpu.Sample on a tiny R1: streams the reasoning as the CLI does"
  else bad "sample's reasoning differs from the CLI's"; diff "$tmp/r1-expected.txt" "$tmp/r1-sample.txt" | head; fi
else
  cat "$tmp/synth.log" "$tmp/r1-cli.err" "$tmp/r1-sample.err" 2>/dev/null | tail -20; bad "tiny R1 model, CLI or sample run"
fi
finish
