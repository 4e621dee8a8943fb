using System.Text.Json;

namespace DeepSeekCpu.Tokenization;

/// <summary>
/// The GGUF form of a Hugging Face byte-level BPE vocabulary (llama.cpp gguf-py constants.py Keys.Tokenizer,
/// convert_hf_to_gguf.py get_vocab_base): tokens in id order, their types (1 normal, 3 control, 4 user-defined),
/// merges as "a b" strings, the pre-tokenizer name, special ids and the chat template.
/// </summary>
public static class GgufVocabulary
{
    /// <param name="vocabSize">The model's vocabulary (embedding rows); the token list is padded to it with unused
    /// "[PADn]" entries as llama.cpp's converter does, so token ids and logits line up.</param>
    public static List<(string key, object value)> FromHuggingFace(string dir, int vocabSize = 0)
    {
        string path = Path.Combine(dir, "tokenizer.json");
        if (!File.Exists(path)) throw new ModelFormatException($"{dir}: no tokenizer.json to write into the GGUF");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = doc.RootElement;
        var model = root.GetProperty("model");
        var vocab = model.GetProperty("vocab");
        var byId = new SortedDictionary<int, (string token, int type)>();
        foreach (var p in vocab.EnumerateObject()) byId[p.Value.GetInt32()] = (p.Name, 1);
        if (root.TryGetProperty("added_tokens", out var added))
            foreach (var t in added.EnumerateArray())
                byId[t.GetProperty("id").GetInt32()] = (t.GetProperty("content").GetString()!, t.TryGetProperty("special", out var sp) && sp.GetBoolean() ? 3 : 4);
        int n = Math.Max(vocabSize, byId.Count == 0 ? 0 : byId.Keys.Max() + 1);
        var tokens = new string[n];
        var types = new int[n];
        for (int i = 0; i < n; i++)
        {
            // Ids with no token (holes in the vocabulary) become unused placeholders, as llama.cpp's converter writes them.
            if (byId.TryGetValue(i, out var e)) { tokens[i] = e.token; types[i] = e.type; }
            else { tokens[i] = $"[PAD{i}]"; types[i] = 5; }
        }
        var merges = new List<string>();
        foreach (var m in model.GetProperty("merges").EnumerateArray())
            merges.Add(m.ValueKind == JsonValueKind.Array ? $"{m[0].GetString()} {m[1].GetString()}" : m.GetString()!);

        // llama.cpp names pre-tokenizers by model family (llama-vocab.cpp LLAMA_VOCAB_PRE_TYPE_*); recognise the
        // family from the Split regexes: DeepSeek-V3 isolates digit runs and CJK, Llama 3 has \p{N}{1,3} inline,
        // Qwen2 (the R1 distills) splits single digits.
        var patterns = new List<string>();
        void Collect(JsonElement e)
        {
            if (e.ValueKind == JsonValueKind.Object)
            {
                if (e.TryGetProperty("Regex", out var r) && r.ValueKind == JsonValueKind.String) patterns.Add(r.GetString()!);
                foreach (var p in e.EnumerateObject()) Collect(p.Value);
            }
            else if (e.ValueKind == JsonValueKind.Array) foreach (var x in e.EnumerateArray()) Collect(x);
        }
        if (root.TryGetProperty("pre_tokenizer", out var pre)) Collect(pre);
        string preName = patterns.Any(x => x.Contains('\u4e00')) ? "deepseek-v3"
            : patterns.Any(x => x.Contains("\\p{N}{1,3}")) ? "llama-bpe"
            : "deepseek-r1-qwen";
        var meta = new List<(string, object)>
        {
            ("tokenizer.ggml.model", "gpt2"),
            ("tokenizer.ggml.pre", preName),
            ("tokenizer.ggml.tokens", tokens),
            ("tokenizer.ggml.token_type", types),
            ("tokenizer.ggml.merges", merges.ToArray()),
        };
        string cfgPath = Path.Combine(dir, "tokenizer_config.json");
        if (File.Exists(cfgPath))
        {
            using var cfg = JsonDocument.Parse(File.ReadAllBytes(cfgPath));
            int? Id(string field)
            {
                if (!cfg.RootElement.TryGetProperty(field, out var v)) return null;
                string? s = v.ValueKind == JsonValueKind.String ? v.GetString() : v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) ? c.GetString() : null;
                int idx = s == null ? -1 : Array.IndexOf(tokens, s);
                return idx >= 0 ? idx : null;
            }
            if (Id("bos_token") is int bos) meta.Add(("tokenizer.ggml.bos_token_id", (uint)bos));
            if (Id("eos_token") is int eos) meta.Add(("tokenizer.ggml.eos_token_id", (uint)eos));
            if (Id("pad_token") is int pad) meta.Add(("tokenizer.ggml.padding_token_id", (uint)pad));
            if (cfg.RootElement.TryGetProperty("add_bos_token", out var ab) && ab.ValueKind is JsonValueKind.True or JsonValueKind.False)
                meta.Add(("tokenizer.ggml.add_bos_token", ab.GetBoolean()));
            if (cfg.RootElement.TryGetProperty("chat_template", out var ct) && ct.ValueKind == JsonValueKind.String)
                meta.Add(("tokenizer.chat_template", ct.GetString()!));
        }
        return meta;
    }
}
