namespace DeepSeekCpu.Tokenizers;

/// <summary>
/// The GGUF form of a Hugging Face byte-level BPE vocabulary (llama.cpp gguf-py constants.py Keys.Tokenizer,
/// convert_hf_to_gguf.py get_vocab_base): tokens in id order, their types (1 normal, 3 control, 4 user-defined,
/// 5 unused), merges as "a b" strings, the pre-tokenizer name, special ids and the chat template. Reads the folder
/// with the same reader the tokenizer itself uses (<see cref="TokenizerJsonReader"/>).
/// </summary>
internal static class GgufVocabulary
{
    /// <param name="vocabSize">The model's vocabulary (embedding rows); the token list is padded to it with unused
    /// "[PADn]" entries as llama.cpp's converter does, so token ids and logits line up.</param>
    public static List<(string key, object value)> FromHuggingFace(string dir, int vocabSize = 0)
    {
        string path = Path.Combine(dir, "tokenizer.json");
        if (!File.Exists(path)) throw new ModelFormatException($"{dir}: no tokenizer.json to write into the GGUF");
        string config = Path.Combine(dir, "tokenizer_config.json");
        var def = TokenizerJsonReader.Read(path, File.Exists(config) ? config : null, null);

        int n = Math.Max(vocabSize, Math.Max(def.Vocab.Count == 0 ? 0 : def.Vocab.Max(kv => kv.Value) + 1,
                                              def.AddedTokens.Count == 0 ? 0 : def.AddedTokens.Max(t => t.Id) + 1));
        var tokens = new string[n];
        var types = new int[n];
        foreach (var (token, id) in def.Vocab) { tokens[id] = token; types[id] = 1; }
        foreach (var t in def.AddedTokens) { tokens[t.Id] = t.Content; types[t.Id] = t.Special ? 3 : 4; }
        for (int i = 0; i < n; i++)
            if (tokens[i] == null) { tokens[i] = $"[PAD{i}]"; types[i] = 5; } // holes: unused placeholders

        // llama.cpp names pre-tokenizers by model family (llama-vocab.cpp LLAMA_VOCAB_PRE_TYPE_*); recognise the family
        // from the Split regexes: DeepSeek-V3 isolates CJK runs (and digit runs), Llama 3 has \p{N}{1,3} inline,
        // Qwen2 (the R1 distills) splits single digits.
        string pre = def.PreTokenizer.ToString();
        string preName = pre.Contains('\u4e00') ? "deepseek-v3" : pre.Contains("\\p{N}{1,3}") ? "llama-bpe" : "deepseek-r1-qwen";

        var meta = new List<(string, object)>
        {
            ("tokenizer.ggml.model", "gpt2"),
            ("tokenizer.ggml.pre", preName),
            ("tokenizer.ggml.tokens", tokens),
            ("tokenizer.ggml.token_type", types),
            ("tokenizer.ggml.merges", def.Merges.ToArray()),
            ("tokenizer.ggml.add_bos_token", def.AddBos),
        };
        if (def.BosId is int bos) meta.Add(("tokenizer.ggml.bos_token_id", (uint)bos));
        if (def.EosId is int eos) meta.Add(("tokenizer.ggml.eos_token_id", (uint)eos));
        if (def.ChatTemplate is { } template) meta.Add(("tokenizer.chat_template", template));
        return meta;
    }
}
