#!/usr/bin/env python3
"""Cuts a Hugging Face tokenizer.json to its first N ids, for synthetic GGUF files the peers can load.

llama.cpp refuses a GGUF whose token list is longer than the embedding, and `synth --tokenizer DIR` writes the
tokenizer's whole list; DeepSeek-V2-Lite's embedding has 102400 rows, the DeepSeek-V3 tokenizer in
tests/fixtures/tokenizers/deepseek-v3 129280 ids. Speed does not depend on which tokens exist, so the benchmark file
gets the ids below N, the merges among them, and the added tokens below N:

    bench/cut_tokenizer.py tests/fixtures/tokenizers/deepseek-v3 102400 /tmp/tok-v2l
    deepseek-cpu-tools synth --shape v2-lite --type q4_0 --tokenizer /tmp/tok-v2l -o v2l-q4_0.gguf
"""
import json
import os
import shutil
import sys

if len(sys.argv) != 4:
    sys.exit(__doc__)
src, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
tok = json.load(open(os.path.join(src, "tokenizer.json"), encoding="utf-8"))
vocab = {t: i for t, i in tok["model"]["vocab"].items() if i < n}
tok["model"]["vocab"] = vocab


def parts(merge):  # both forms occur: "a b" and ["a", "b"]
    return merge.split(" ", 1) if isinstance(merge, str) else merge


tok["model"]["merges"] = [m for m in tok["model"]["merges"]
                          if all(p in vocab for p in parts(m)) and "".join(parts(m)) in vocab]
tok["added_tokens"] = [t for t in tok["added_tokens"] if t["id"] < n]
os.makedirs(out, exist_ok=True)
json.dump(tok, open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8"), ensure_ascii=False)
if os.path.exists(os.path.join(src, "tokenizer_config.json")):
    shutil.copy(os.path.join(src, "tokenizer_config.json"), out)
print(f"{out}: {len(vocab)} tokens, {len(tok['model']['merges'])} merges, {len(tok['added_tokens'])} added tokens")
