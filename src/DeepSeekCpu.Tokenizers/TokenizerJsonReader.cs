using System.Text.Json;
using DeepSeekCpu.Formats;

namespace DeepSeekCpu.Tokenizers;

/// <summary>
/// Reads Hugging Face <c>tokenizer.json</c> (format of the <c>tokenizers</c> library, serialized by its serde
/// implementations: <c>model</c>, <c>added_tokens</c>, <c>normalizer</c>, <c>pre_tokenizer</c>, <c>post_processor</c>,
/// <c>decoder</c>) plus transformers' <c>tokenizer_config.json</c> (bos/eos token, <c>add_bos_token</c>,
/// <c>chat_template</c>) and <c>generation_config.json</c> (<c>eos_token_id</c>, int or list).
/// Only byte-level BPE is supported; anything else fails with a one-line message naming the file and the field.
/// </summary>
internal static class TokenizerJsonReader
{
    public static BpeDefinition Read(string path, string? configPath, string? generationConfigPath)
    {
        // ParseFile refuses invalid UTF-8; what is left is an escaped lone surrogate or a value of the wrong type
        try { return ReadChecked(path, configPath, generationConfigPath); }
        catch (Exception e) when (JsonFile.IsReadError(e))
        {
            throw new InvalidFileException(JsonFile.ReadErrorText(configPath is null ? path : $"{path} or {configPath}", e), e);
        }
    }

    private static BpeDefinition ReadChecked(string path, string? configPath, string? generationConfigPath)
    {
        using JsonDocument doc = ParseFile(path);
        JsonElement root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            throw Bad(path, "expected a JSON object at the top level");

        if (!root.TryGetProperty("model", out JsonElement model) || model.ValueKind != JsonValueKind.Object)
            throw Bad(path, "expected a \"model\" object");
        string? modelType = OptionalString(model, "type");
        if (modelType is not null && modelType != "BPE")
            throw Bad(path, $"model.type is '{modelType}', expected 'BPE' (byte-level BPE)");
        if (!model.TryGetProperty("vocab", out JsonElement vocabElement) || vocabElement.ValueKind != JsonValueKind.Object)
            throw Bad(path, "expected model.vocab (an object mapping token → id)");
        if (model.TryGetProperty("byte_fallback", out JsonElement fallback) && fallback.ValueKind == JsonValueKind.True)
            throw Bad(path, "model.byte_fallback is true (SentencePiece-style BPE); only byte-level BPE is supported");

        (List<KeyValuePair<string, int>> vocab, List<string> merges) = ReadVocabAndMerges(path, model, vocabElement);

        var added = new List<AddedToken>();
        if (root.TryGetProperty("added_tokens", out JsonElement addedElement) && addedElement.ValueKind == JsonValueKind.Array)
        {
            foreach (JsonElement t in addedElement.EnumerateArray())
            {
                if (!t.TryGetProperty("id", out JsonElement idEl) || !idEl.TryGetInt32(out int id) || OptionalString(t, "content") is not string content)
                    throw Bad(path, "added_tokens entry without integer \"id\" and string \"content\"");
                added.Add(new AddedToken(id, content,
                    Special: Flag(t, "special"), LStrip: Flag(t, "lstrip"), RStrip: Flag(t, "rstrip"),
                    SingleWord: Flag(t, "single_word"), Normalized: Flag(t, "normalized")));
            }
        }

        HfNormalizer? normalizer = root.TryGetProperty("normalizer", out JsonElement n) ? ReadNormalizer(path, n) : null;
        if (!root.TryGetProperty("pre_tokenizer", out JsonElement pre) || pre.ValueKind == JsonValueKind.Null)
            throw Bad(path, "expected a pre_tokenizer with a ByteLevel step (byte-level BPE)");
        var steps = new List<HfPreTokenizer.Step>();
        bool byteLevel = false;
        ReadPreTokenizer(path, pre, steps, ref byteLevel);
        if (!byteLevel)
            throw Bad(path, "pre_tokenizer has no ByteLevel step; only byte-level BPE is supported");
        if (root.TryGetProperty("decoder", out JsonElement decoder) && decoder.ValueKind == JsonValueKind.Object && !HasByteLevelDecoder(decoder))
            throw Bad(path, $"decoder type '{OptionalString(decoder, "type")}' is not supported (expected ByteLevel)");

        // Post-processor: which special tokens wrap a single sequence (TemplateProcessing "single").
        string? postBos = null, postEos = null;
        if (root.TryGetProperty("post_processor", out JsonElement post))
            ReadPostProcessor(path, post, ref postBos, ref postEos);

        // tokenizer_config.json, when present, names BOS/EOS and (for Llama-style tokenizer classes, which rebuild
        // the post-processor from it in transformers) decides whether BOS/EOS are added.
        string? bosText = postBos, eosText = null, chatTemplate = null;
        bool addBos = postBos is not null, addEos = postEos is not null;
        if (configPath is not null)
        {
            using JsonDocument config = ParseFile(configPath);
            JsonElement c = config.RootElement;
            if (c.ValueKind != JsonValueKind.Object)
                throw Bad(configPath, "expected a JSON object at the top level");
            bosText = TokenText(c, "bos_token") ?? bosText;
            eosText = TokenText(c, "eos_token");
            if (c.TryGetProperty("add_bos_token", out JsonElement ab) && ab.ValueKind is JsonValueKind.True or JsonValueKind.False)
                addBos = ab.GetBoolean();
            if (c.TryGetProperty("add_eos_token", out JsonElement ae) && ae.ValueKind is JsonValueKind.True or JsonValueKind.False)
                addEos = ae.GetBoolean();
            chatTemplate = ReadChatTemplate(c);
        }
        eosText ??= postEos;

        var stop = new List<int>();
        int? eosFromGeneration = null;
        if (generationConfigPath is not null)
        {
            using JsonDocument gen = ParseFile(generationConfigPath);
            if (gen.RootElement.ValueKind == JsonValueKind.Object && gen.RootElement.TryGetProperty("eos_token_id", out JsonElement e))
            {
                if (e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int one))
                    stop.Add(one);
                else if (e.ValueKind == JsonValueKind.Array)
                    foreach (JsonElement x in e.EnumerateArray())
                        if (x.TryGetInt32(out int v)) stop.Add(v);
                if (stop.Count > 0)
                    eosFromGeneration = stop[0];
            }
        }

        int? Lookup(string? text)
        {
            if (text is null)
                return null;
            foreach (AddedToken t in added)
                if (t.Content == text) return t.Id;
            foreach (var kv in vocab)
                if (kv.Key == text) return kv.Value;
            return null;
        }

        int? bosId = Lookup(bosText);
        if (bosText is not null && bosId is null)
            throw Bad(configPath ?? path, $"bos_token '{bosText}' is not in the vocabulary");
        int? eosId = Lookup(eosText) ?? eosFromGeneration;
        if (eosText is not null && Lookup(eosText) is null)
            throw Bad(configPath ?? path, $"eos_token '{eosText}' is not in the vocabulary");

        return new BpeDefinition
        {
            Source = path,
            Vocab = vocab,
            Merges = merges,
            AddedTokens = added,
            PreTokenizer = new HfPreTokenizer(steps),
            Normalizer = normalizer,
            IgnoreMerges = model.TryGetProperty("ignore_merges", out JsonElement im) && im.ValueKind == JsonValueKind.True,
            UnknownToken = OptionalString(model, "unk_token"),
            ContinuingSubwordPrefix = OptionalString(model, "continuing_subword_prefix"),
            EndOfWordSuffix = OptionalString(model, "end_of_word_suffix"),
            BosId = bosId,
            EosId = eosId,
            AddBos = addBos,
            AddEos = addEos,
            ExtraStopIds = stop,
            ChatTemplate = chatTemplate,
        };
    }

    // The bulk of loading: 150k vocabulary entries and as many merges. Fully optimized from the first call, since a
    // tokenizer is usually loaded once per process and tier-0 code would run these loops unoptimized.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static (List<KeyValuePair<string, int>>, List<string>) ReadVocabAndMerges(string path, JsonElement model, JsonElement vocabElement)
    {
        var vocab = new List<KeyValuePair<string, int>>(10_000);
        foreach (JsonProperty p in vocabElement.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id))
                throw Bad(path, $"model.vocab['{p.Name}'] is not an integer id");
            vocab.Add(new(p.Name, id));
        }

        var merges = new List<string>(vocab.Count);
        if (model.TryGetProperty("merges", out JsonElement mergesElement) && mergesElement.ValueKind != JsonValueKind.Null)
        {
            if (mergesElement.ValueKind != JsonValueKind.Array)
                throw Bad(path, "model.merges is not an array");
            int index = 0;
            foreach (JsonElement m in mergesElement.EnumerateArray())
            {
                // Older files write "a b"; newer ones (tokenizers >= 0.20) write ["a", "b"]. Byte-level tokens never
                // contain a space (it is 'Ġ'), so "a b" is unambiguous and is what Microsoft.ML.Tokenizers expects.
                if (m.ValueKind == JsonValueKind.String)
                {
                    merges.Add(m.GetString()!);
                }
                else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2
                         && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
                {
                    string a = m[0].GetString()!, b = m[1].GetString()!;
                    if (a.Contains(' ') || b.Contains(' '))
                        throw Bad(path, $"model.merges[{index}] has a token with a space, not supported");
                    merges.Add(string.Concat(a, " ", b));
                }
                else
                {
                    throw Bad(path, $"model.merges[{index}] is neither \"a b\" nor [\"a\", \"b\"]");
                }
                index++;
            }
        }
        return (vocab, merges);
    }

    private static HfNormalizer? ReadNormalizer(string path, JsonElement n)
    {
        if (n.ValueKind == JsonValueKind.Null)
            return null;
        var kinds = new List<HfNormalizer.Kind>();
        AddNormalizer(path, n, kinds);
        return new HfNormalizer(kinds);
    }

    private static void AddNormalizer(string path, JsonElement n, List<HfNormalizer.Kind> kinds)
    {
        string? type = OptionalString(n, "type");
        switch (type)
        {
            case "Sequence":
                if (n.TryGetProperty("normalizers", out JsonElement list) && list.ValueKind == JsonValueKind.Array)
                    foreach (JsonElement x in list.EnumerateArray())
                        AddNormalizer(path, x, kinds);
                break;
            case "NFC": kinds.Add(HfNormalizer.Kind.Nfc); break;
            case "NFD": kinds.Add(HfNormalizer.Kind.Nfd); break;
            case "Lowercase": kinds.Add(HfNormalizer.Kind.Lowercase); break;
            default:
                throw Bad(path, $"normalizer type '{type}' is not supported (supported: Sequence, NFC, NFD, Lowercase; NFKC/NFKD need compatibility data not bundled)");
        }
    }

    private static void ReadPreTokenizer(string path, JsonElement p, List<HfPreTokenizer.Step> steps, ref bool byteLevel)
    {
        string? type = OptionalString(p, "type");
        switch (type)
        {
            case "Sequence":
                if (!p.TryGetProperty("pretokenizers", out JsonElement list) || list.ValueKind != JsonValueKind.Array)
                    throw Bad(path, "pre_tokenizer Sequence without a \"pretokenizers\" array");
                foreach (JsonElement x in list.EnumerateArray())
                    ReadPreTokenizer(path, x, steps, ref byteLevel);
                break;
            case "Split":
            {
                string pattern;
                if (p.TryGetProperty("pattern", out JsonElement pat) && pat.ValueKind == JsonValueKind.Object)
                {
                    if (OptionalString(pat, "Regex") is string regex)
                        pattern = regex;
                    else if (OptionalString(pat, "String") is string literal)
                        pattern = System.Text.RegularExpressions.Regex.Escape(literal);
                    else
                        throw Bad(path, "pre_tokenizer Split pattern has neither \"Regex\" nor \"String\"");
                }
                else
                {
                    throw Bad(path, "pre_tokenizer Split without a \"pattern\" object");
                }
                string behaviorText = OptionalString(p, "behavior") ?? "Isolated";
                if (!Enum.TryParse(behaviorText, out HfPreTokenizer.SplitBehavior behavior))
                    throw Bad(path, $"pre_tokenizer Split behavior '{behaviorText}' is not known");
                bool invert = p.TryGetProperty("invert", out JsonElement inv) && inv.ValueKind == JsonValueKind.True;
                try
                {
                    steps.Add(HfPreTokenizer.Regex(pattern, behavior, invert));
                }
                catch (ArgumentException e)
                {
                    throw Bad(path, $"pre_tokenizer Split regex does not compile in .NET ({e.Message})");
                }
                break;
            }
            case "ByteLevel":
            {
                if (p.TryGetProperty("add_prefix_space", out JsonElement aps) && aps.ValueKind == JsonValueKind.True)
                    throw Bad(path, "pre_tokenizer ByteLevel with add_prefix_space true is not supported");
                // HF default for use_regex is true (byte_level.rs).
                bool useRegex = !p.TryGetProperty("use_regex", out JsonElement ur) || ur.ValueKind != JsonValueKind.False;
                steps.Add(new HfPreTokenizer.ByteLevelStep(useRegex));
                byteLevel = true;
                break;
            }
            case "Digits":
                steps.Add(HfPreTokenizer.Digits(p.TryGetProperty("individual_digits", out JsonElement d) && d.ValueKind == JsonValueKind.True));
                break;
            default:
                throw Bad(path, $"pre_tokenizer type '{type}' is not supported (supported: Sequence, Split, ByteLevel, Digits)");
        }
    }

    private static bool HasByteLevelDecoder(JsonElement d)
    {
        string? type = OptionalString(d, "type");
        if (type == "ByteLevel")
            return true;
        if (type == "Sequence" && d.TryGetProperty("decoders", out JsonElement list) && list.ValueKind == JsonValueKind.Array)
            return list.EnumerateArray().Any(HasByteLevelDecoder);
        return false;
    }

    private static void ReadPostProcessor(string path, JsonElement p, ref string? bos, ref string? eos)
    {
        if (p.ValueKind != JsonValueKind.Object)
            return;
        string? type = OptionalString(p, "type");
        switch (type)
        {
            case "ByteLevel":
                break; // only adjusts offsets
            case "Sequence":
                if (p.TryGetProperty("processors", out JsonElement list) && list.ValueKind == JsonValueKind.Array)
                    foreach (JsonElement x in list.EnumerateArray())
                        ReadPostProcessor(path, x, ref bos, ref eos);
                break;
            case "TemplateProcessing":
            {
                // "single": [SpecialToken, Sequence A, SpecialToken …]; a special token before A is BOS, after is EOS.
                if (!p.TryGetProperty("single", out JsonElement single) || single.ValueKind != JsonValueKind.Array)
                    break;
                bool seenSequence = false;
                foreach (JsonElement item in single.EnumerateArray())
                {
                    if (item.TryGetProperty("Sequence", out _))
                    {
                        seenSequence = true;
                    }
                    else if (item.TryGetProperty("SpecialToken", out JsonElement st) && OptionalString(st, "id") is string name)
                    {
                        if (!seenSequence) bos ??= name;
                        else eos ??= name;
                    }
                }
                break;
            }
            default:
                throw Bad(path, $"post_processor type '{type}' is not supported (supported: TemplateProcessing, ByteLevel, Sequence)");
        }
    }

    private static string? ReadChatTemplate(JsonElement config)
    {
        if (!config.TryGetProperty("chat_template", out JsonElement t))
            return null;
        if (t.ValueKind == JsonValueKind.String)
            return t.GetString();
        // Newer configs may hold a list of named templates; the conversation one is "default".
        if (t.ValueKind == JsonValueKind.Array)
            foreach (JsonElement x in t.EnumerateArray())
                if (OptionalString(x, "name") == "default")
                    return OptionalString(x, "template");
        return null;
    }

    /// <summary>A token in tokenizer_config.json: a plain string or an AddedToken object with "content".</summary>
    private static string? TokenText(JsonElement config, string name)
    {
        if (!config.TryGetProperty(name, out JsonElement t))
            return null;
        return t.ValueKind switch
        {
            JsonValueKind.String => t.GetString(),
            JsonValueKind.Object => OptionalString(t, "content"),
            _ => null,
        };
    }

    private static JsonDocument ParseFile(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidFileException($"{path}: cannot read ({e.Message})", e);
        }
        // JSON is UTF-8 (RFC 8259); System.Text.Json would find out only when a string is read
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
            throw new InvalidFileException($"{path}: not valid UTF-8 (JSON text must be UTF-8)");
        try
        {
            return JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new InvalidFileException($"{path}: not valid JSON ({e.Message.ReplaceLineEndings(" ")})", e);
        }
    }

    private static string? OptionalString(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static bool Flag(JsonElement e, string name) =>
        e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.True;

    private static InvalidFileException Bad(string path, string what) => new($"{path}: {what}");
}
