using System.Collections;

namespace DeepSeekCpu.Tokenizers;

/// <summary>
/// Builds a byte-level BPE definition from GGUF metadata, following llama.cpp's conventions (gguf-py
/// <c>constants.py</c> key names, <c>convert_hf_to_gguf.py</c> for how a tokenizer.json is stored):
/// <list type="bullet">
/// <item><c>tokenizer.ggml.model</c> = "gpt2" (byte-level BPE); <c>tokenizer.ggml.tokens</c> (string[], by id, in the
/// GPT-2 byte alphabet); <c>tokenizer.ggml.token_type</c> (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
/// 6 byte); <c>tokenizer.ggml.merges</c> ("a b").</item>
/// <item><c>tokenizer.ggml.pre</c> names the pre-tokenizer; llama.cpp hard-codes its regexes by name, and so do we
/// (<see cref="KnownPreTokenizers"/>).</item>
/// <item><c>tokenizer.ggml.bos_token_id</c>, <c>eos_token_id</c>, <c>eot_token_id</c>, <c>eom_token_id</c>,
/// <c>add_bos_token</c>, <c>add_eos_token</c>, and <c>tokenizer.chat_template</c>.</item>
/// </list>
/// Control and user-defined tokens are matched in raw text as added tokens (llama.cpp's "special" tokens).
/// </summary>
internal static class GgufTokenizerReader
{
    private const int TypeNormal = 1, TypeUnknown = 2, TypeControl = 3, TypeUserDefined = 4, TypeUnused = 5, TypeByte = 6;

    public static BpeDefinition Read(IReadOnlyDictionary<string, object> md, string source)
    {
        ArgumentNullException.ThrowIfNull(md);
        string model = RequireString(md, "tokenizer.ggml.model", source);
        if (model != "gpt2")
            throw Bad(source, $"tokenizer.ggml.model = '{model}' is not supported (expected 'gpt2', byte-level BPE)");

        string[] tokens = RequireStrings(md, "tokenizer.ggml.tokens", source);
        int[]? types = md.TryGetValue("tokenizer.ggml.token_type", out object? tt) ? ToInts(tt, "tokenizer.ggml.token_type", source) : null;
        if (types is not null && types.Length != tokens.Length)
            throw Bad(source, $"tokenizer.ggml.token_type has {types.Length} entries, expected one per token ({tokens.Length})");
        string[] merges = RequireStrings(md, "tokenizer.ggml.merges", source);

        string pre = RequireString(md, "tokenizer.ggml.pre", source);
        KnownPreTokenizers.Entry entry = KnownPreTokenizers.Find(pre)
            ?? throw Bad(source, $"tokenizer.ggml.pre = '{pre}' is not a supported pre-tokenizer (supported: {string.Join(", ", KnownPreTokenizers.Names)})");

        var vocab = new List<KeyValuePair<string, int>>(tokens.Length);
        var added = new List<AddedToken>();
        for (int id = 0; id < tokens.Length; id++)
        {
            int type = types?[id] ?? TypeNormal;
            switch (type)
            {
                case TypeUnused:
                    break; // padding entries ("[PAD151665]") that the original tokenizer does not have
                case TypeControl:
                case TypeUserDefined:
                    vocab.Add(new(tokens[id], id));
                    added.Add(new AddedToken(id, tokens[id], Special: type == TypeControl));
                    break;
                case TypeNormal or TypeUnknown or TypeByte:
                default:
                    vocab.Add(new(tokens[id], id));
                    break;
            }
        }

        int? bos = OptionalId(md, "tokenizer.ggml.bos_token_id", source, tokens.Length);
        int? eos = OptionalId(md, "tokenizer.ggml.eos_token_id", source, tokens.Length);
        var stop = new List<int>();
        foreach (string key in new[] { "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id" })
            if (OptionalId(md, key, source, tokens.Length) is int id)
                stop.Add(id);

        return new BpeDefinition
        {
            Source = source,
            VocabSize = tokens.Length, // the model's embedding rows, padding entries included
            Vocab = vocab,
            Merges = [.. merges],
            AddedTokens = added,
            PreTokenizer = entry.Create(),
            Normalizer = entry.Normalizer,
            IgnoreMerges = entry.IgnoreMerges,
            BosId = bos,
            EosId = eos,
            // When the key is absent, add BOS if the vocabulary names one (what DeepSeek/Qwen-distill GGUFs state).
            AddBos = OptionalBool(md, "tokenizer.ggml.add_bos_token", source) ?? bos.HasValue,
            AddEos = OptionalBool(md, "tokenizer.ggml.add_eos_token", source) ?? false,
            ExtraStopIds = stop,
            ChatTemplate = md.TryGetValue("tokenizer.chat_template", out object? ct) ? ct as string : null,
        };
    }

    // ---- tolerant adapters: the GGUF reader may box integers as any width, arrays as any integer type ----

    private static string RequireString(IReadOnlyDictionary<string, object> md, string key, string source)
    {
        if (!md.TryGetValue(key, out object? v) || v is null)
            throw Bad(source, $"expected metadata key {key}");
        return v as string ?? throw Bad(source, $"metadata key {key} is {v.GetType().Name}, expected a string");
    }

    private static string[] RequireStrings(IReadOnlyDictionary<string, object> md, string key, string source)
    {
        if (!md.TryGetValue(key, out object? v) || v is null)
            throw Bad(source, $"expected metadata key {key} (array of strings)");
        switch (v)
        {
            case string[] a:
                return a;
            case IEnumerable<string> e:
                return e.ToArray();
            case IEnumerable e when v is not string:
            {
                var list = new List<string>();
                foreach (object? x in e)
                    list.Add(x as string ?? throw Bad(source, $"metadata key {key} holds a {x?.GetType().Name ?? "null"}, expected strings"));
                return list.ToArray();
            }
            default:
                throw Bad(source, $"metadata key {key} is {v.GetType().Name}, expected an array of strings");
        }
    }

    private static int[] ToInts(object v, string key, string source)
    {
        switch (v)
        {
            case int[] a:
                return a;
            case IEnumerable e when v is not string:
            {
                var list = new List<int>();
                foreach (object? x in e)
                {
                    long n = AsInteger(x) ?? throw Bad(source, $"metadata key {key} holds a {x?.GetType().Name ?? "null"}, expected integers");
                    // token types are small enums (llama.cpp's LLAMA_TOKEN_TYPE_*: 0..6); an int64 array may hold anything
                    if (n is < int.MinValue or > int.MaxValue)
                        throw Bad(source, $"metadata key {key} holds {n} at index {list.Count}, expected a 32-bit integer");
                    list.Add((int)n);
                }
                return list.ToArray();
            }
            default:
                throw Bad(source, $"metadata key {key} is {v.GetType().Name}, expected an array of integers");
        }
    }

    internal static long? AsInteger(object? v) => v switch
    {
        sbyte x => x,
        byte x => x,
        short x => x,
        ushort x => x,
        int x => x,
        uint x => x,
        long x => x,
        ulong x when x <= long.MaxValue => (long)x,
        _ => null,
    };

    private static int? OptionalId(IReadOnlyDictionary<string, object> md, string key, string source, int vocabSize)
    {
        if (!md.TryGetValue(key, out object? v) || v is null)
            return null;
        long id = AsInteger(v) ?? throw Bad(source, $"metadata key {key} is {v.GetType().Name}, expected an integer");
        if (id < 0 || id >= vocabSize)
            throw Bad(source, $"metadata key {key} = {id} is outside the vocabulary (0..{vocabSize - 1})");
        return (int)id;
    }

    private static bool? OptionalBool(IReadOnlyDictionary<string, object> md, string key, string source)
    {
        if (!md.TryGetValue(key, out object? v) || v is null)
            return null;
        if (v is bool b)
            return b;
        return AsInteger(v) is long n ? n != 0 : throw Bad(source, $"metadata key {key} is {v.GetType().Name}, expected a bool");
    }

    private static InvalidFileException Bad(string source, string what) => new($"{source}: {what}");
}

/// <summary>
/// Pre-tokenizers that GGUF files name in <c>tokenizer.ggml.pre</c>. The patterns are those of the models' own
/// tokenizer.json files (Qwen2 / R1-Distill-Qwen, Meta Llama 3, DeepSeek-V3), which llama.cpp's llama-vocab.cpp also
/// hard-codes under these names.
/// </summary>
internal static class KnownPreTokenizers
{
    /// <summary>Qwen2 (and R1-Distill-Qwen) tokenizer.json Split regex: single digits.</summary>
    public const string Qwen2 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>Llama 3 tokenizer.json Split regex: digits in groups of up to three.</summary>
    public const string Llama3 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>DeepSeek-V3 tokenizer.json: three Split steps (digit groups, CJK/kana runs, then words/punctuation).</summary>
    public static readonly string[] DeepSeekV3 =
    [
        @"\p{N}{1,3}",
        @"[一-龥぀-ゟ゠-ヿ]+",
        @"[!""#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    ];

    public sealed record Entry(string[] Patterns, HfNormalizer? Normalizer, bool IgnoreMerges)
    {
        public HfPreTokenizer Create()
        {
            var steps = new List<HfPreTokenizer.Step>();
            foreach (string p in Patterns)
                steps.Add(HfPreTokenizer.Regex(p));
            steps.Add(new HfPreTokenizer.ByteLevelStep(useRegex: false));
            return new HfPreTokenizer(steps);
        }
    }

    private static readonly Dictionary<string, Entry> s_entries = new(StringComparer.Ordinal)
    {
        // Qwen2's tokenizer.json normalizes to NFC; GGUF does not record normalizers, so it is implied by the name.
        ["qwen2"] = new([Qwen2], new HfNormalizer([HfNormalizer.Kind.Nfc]), IgnoreMerges: false),
        ["deepseek-r1-qwen"] = new([Qwen2], new HfNormalizer([HfNormalizer.Kind.Nfc]), IgnoreMerges: false),
        // Llama 3's tokenizer.json sets model.ignore_merges (llama.cpp: tokenizer_ignore_merges for LLAMA3).
        ["llama-bpe"] = new([Llama3], null, IgnoreMerges: true),
        ["llama3"] = new([Llama3], null, IgnoreMerges: true),
        ["deepseek-v3"] = new(DeepSeekV3, null, IgnoreMerges: false),
    };

    public static IEnumerable<string> Names => s_entries.Keys;

    public static Entry? Find(string name) => s_entries.GetValueOrDefault(name);
}
