using System.Buffers;
using System.Text;
using DeepSeekCpu.Tokenization;
using Microsoft.ML.Tokenizers;

namespace DeepSeekCpu.Tokenizers;

/// <summary>
/// Byte-level BPE tokenizer (GPT-2 family: Qwen2 / R1-Distill, DeepSeek-V3 / R1, Llama 3) with Hugging Face
/// tokenizers' semantics, loaded from <c>tokenizer.json</c> (+ <c>tokenizer_config.json</c>) or from GGUF metadata.
/// <para>
/// Pipeline of <see cref="Encode(string, bool, CancellationToken)"/>, as in HF <c>TokenizerImpl::encode</c>:
/// 1. added tokens that are not "normalized" are found in the raw text (<see cref="AddedTokenMatcher"/>);
/// 2. the text between them is normalized (NFC for Qwen), then searched for "normalized" added tokens;
/// 3. the rest is pre-tokenized (<see cref="HfPreTokenizer"/>) and each piece is byte-level BPE encoded by
///    Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/> (merges applied by rank);
/// 4. with <c>addSpecial</c>, BOS/EOS as the post-processor / tokenizer_config say.
/// </para>
/// Decoding maps each token back to bytes (<see cref="ByteLevelAlphabet"/>), added tokens as their own text, and reads
/// the joined bytes as UTF-8 with U+FFFD for invalid sequences, like HF's ByteLevel decoder.
/// Thread-safe for concurrent Encode/Decode.
/// </summary>
internal sealed class HfBpeTokenizer : ITokenizer
{
    // Tokens that end a turn in DeepSeek / Qwen / Llama 3 vocabularies; each counts as a stop id when the files
    // define it (the ids are read, never assumed).
    private static readonly string[] s_endOfTurnTokens =
        ["<｜end▁of▁sentence｜>", "<|EOT|>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"];

    private readonly BpeTokenizer _bpe;
    private readonly HfPreTokenizer _preTokenizer;
    private readonly HfNormalizer? _normalizer;
    private readonly AddedTokenMatcher _rawAdded;         // added tokens matched before normalization
    private readonly AddedTokenMatcher? _normalizedAdded; // added tokens matched in normalized text
    private readonly bool _ignoreMerges;
    private readonly string?[] _idToToken;
    private readonly Dictionary<string, int> _tokenToId;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _tokenLookup;
    private readonly byte[] _tokenBytes;   // all tokens' bytes, concatenated in id order
    private readonly int[] _tokenOffsets;  // token id's bytes are _tokenBytes[_tokenOffsets[id] .. _tokenOffsets[id + 1])
    private readonly HashSet<int> _stopIds;
    private readonly HashSet<int> _addedIds;

    /// <summary>How far ids may run past the number of tokens listed (unused ids pad the embedding table).</summary>
    internal const int MaxIdGap = 1 << 16;

    /// <param name="encoding">The template to use when the definition has no Jinja template DeepSeek's way is known for
    /// (V3.2 and V4 ship Python encoders instead; <see cref="DeepSeekEncoding.ForModelFolder"/>).</param>
    internal HfBpeTokenizer(BpeDefinition d, IChatTemplate? encoding = null)
    {
        Source = d.Source;
        _preTokenizer = d.PreTokenizer;
        _normalizer = d.Normalizer is { IsIdentity: false } ? d.Normalizer : null;
        _ignoreMerges = d.IgnoreMerges;
        AddedTokens = d.AddedTokens;

        // Building the Microsoft.ML.Tokenizers model (vocabulary dictionary, merge table, reverse map) is the slow
        // part of loading; it runs on another core while the id tables below are built (unless OneThreadSwitch asks
        // for one thread: the fuzzer's coverage map must not see two threads' branches interleave).
        Task<BpeTokenizer> model = AppContext.TryGetSwitch(OneThreadSwitch, out bool oneThread) && oneThread
            ? Task.FromResult(CreateModel(d))
            : Task.Run(() => CreateModel(d));
        try
        {
            // Id tables cover the model vocabulary and the added tokens; ids in neither (padding) stand for no bytes.
            // The tables are sized by the largest id, which comes from the file: ids must stay within the tokens listed
            // plus a margin for padding, so an id of 10^9 in a small file cannot allocate gigabytes (or -1 index nothing).
            long idLimit = Math.Max(d.VocabSize ?? 0, (long)d.Vocab.Count + d.AddedTokens.Count + MaxIdGap);
            int size = d.VocabSize ?? 0;
            foreach (var kv in d.Vocab)
            {
                if (kv.Value < 0 || kv.Value >= idLimit)
                    throw new InvalidFileException($"{d.Source}: token '{kv.Key}' has id {kv.Value} (expected 0..{idLimit - 1} for {d.Vocab.Count} tokens)");
                size = Math.Max(size, kv.Value + 1);
            }
            foreach (AddedToken t in d.AddedTokens)
            {
                if (t.Id < 0 || t.Id >= idLimit)
                    throw new InvalidFileException($"{d.Source}: added token '{t.Content}' has id {t.Id} (expected 0..{idLimit - 1} for {d.Vocab.Count} tokens)");
                size = Math.Max(size, t.Id + 1);
            }
            foreach (int? id in new[] { d.BosId, d.EosId })
                if (id is int bad && (bad < 0 || bad >= size))
                    throw new InvalidFileException($"{d.Source}: special token id {bad} is outside the vocabulary (0..{size - 1})");
            _idToToken = new string?[size];
            _tokenToId = new Dictionary<string, int>(d.Vocab.Count + d.AddedTokens.Count, StringComparer.Ordinal);
            foreach (var kv in d.Vocab)
            {
                _idToToken[kv.Value] = kv.Key;
                _tokenToId.TryAdd(kv.Key, kv.Value);
            }
            foreach (AddedToken t in d.AddedTokens)
            {
                _idToToken[t.Id] = t.Content;
                _tokenToId[t.Content] = t.Id;
            }
            _tokenLookup = _tokenToId.GetAlternateLookup<ReadOnlySpan<char>>();
            _addedIds = d.AddedTokens.Select(t => t.Id).ToHashSet();

            (_tokenBytes, _tokenOffsets) = BuildTokenBytes(_idToToken);

            _rawAdded = new AddedTokenMatcher(d.AddedTokens.Where(t => !t.Normalized));
            var normalizedTokens = d.AddedTokens.Where(t => t.Normalized).ToList();
            if (normalizedTokens.Count > 0)
                _normalizedAdded = new AddedTokenMatcher(normalizedTokens, _normalizer is null ? null : _normalizer.Normalize);

            BosId = d.BosId;
            EosId = d.EosId;
            AddsBos = d.AddBos && d.BosId.HasValue;
            AddsEos = d.AddEos && d.EosId.HasValue;
            _stopIds = [];
            if (d.EosId is int eos)
                _stopIds.Add(eos);
            foreach (int id in d.ExtraStopIds)
                _stopIds.Add(id);
            foreach (string name in s_endOfTurnTokens)
            {
                if (_tokenToId.TryGetValue(name, out int id))
                    _stopIds.Add(id);
            }
            ChatTemplateText = d.ChatTemplate;
            BosToken = d.BosId is int b ? _idToToken[b] : null;
            ChatTemplate = (IChatTemplate?)R1ChatTemplate.FromJinja(d.ChatTemplate, BosToken ?? "") ?? (d.ChatTemplate == null ? encoding : null);
        }
        catch
        {
            // a rejected file leaves nothing running: the model's build ends (or fails) before the error goes up
            try { model.Wait(); } catch (AggregateException) { }
            throw;
        }
        _bpe = model.GetAwaiter().GetResult(); // rethrows CreateModel's exception as is
    }

    /// <summary>AppContext switch: build the tokenizer on the calling thread only (tools/DeepSeekCpu.Fuzz sets it).</summary>
    public const string OneThreadSwitch = "DeepSeekCpu.Tokenizers.LoadOnOneThread";

    private static BpeTokenizer CreateModel(BpeDefinition d)
    {
        try
        {
            return BpeTokenizer.Create(new BpeOptions(d.Vocab)
            {
                Merges = d.Merges,
                PreTokenizer = d.PreTokenizer,
                ByteLevel = true,
                UnknownToken = d.UnknownToken,
                ContinuingSubwordPrefix = string.IsNullOrEmpty(d.ContinuingSubwordPrefix) ? null : d.ContinuingSubwordPrefix,
                EndOfWordSuffix = string.IsNullOrEmpty(d.EndOfWordSuffix) ? null : d.EndOfWordSuffix,
            });
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            throw new InvalidFileException($"{d.Source}: inconsistent BPE vocabulary/merges ({e.Message})", e);
        }
    }

    /// <summary>All tokens' bytes in one array, with offsets by id (one allocation instead of one per token).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static (byte[] Bytes, int[] Offsets) BuildTokenBytes(string?[] idToToken)
    {
        var offsets = new int[idToToken.Length + 1];
        var bytes = new byte[idToToken.Sum(t => t is null ? 0 : System.Text.Encoding.UTF8.GetMaxByteCount(t.Length))];
        int at = 0;
        for (int id = 0; id < idToToken.Length; id++)
        {
            offsets[id] = at;
            if (idToToken[id] is not string token)
                continue;
            bool alphabet = true;
            foreach (char c in token)
            {
                if (!ByteLevelAlphabet.TryGetByte(c, out bytes[at++]))
                {
                    alphabet = false;
                    break;
                }
            }
            if (!alphabet) // HF's ByteLevel decoder falls back to the token's own UTF-8 (added tokens)
                at = offsets[id] + System.Text.Encoding.UTF8.GetBytes(token, bytes.AsSpan(offsets[id]));
        }
        offsets[idToToken.Length] = at;
        return (bytes[..at], offsets);
    }

    /// <summary>Loads <c>tokenizer.json</c>; <c>tokenizer_config.json</c> and <c>generation_config.json</c> are read
    /// from the same folder when present.</summary>
    /// <exception cref="InvalidFileException">One line naming the file and what was expected.</exception>
    public static HfBpeTokenizer FromTokenizerJson(string tokenizerJsonPath)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(tokenizerJsonPath)) ?? ".";
        string config = Path.Combine(dir, "tokenizer_config.json");
        string generation = Path.Combine(dir, "generation_config.json");
        return new HfBpeTokenizer(TokenizerJsonReader.Read(
            tokenizerJsonPath, File.Exists(config) ? config : null, File.Exists(generation) ? generation : null),
            DeepSeekEncoding.ForModelFolder(dir));
    }

    /// <summary>Builds the tokenizer from GGUF <c>tokenizer.ggml.*</c> metadata (see <see cref="GgufTokenizerReader"/>).</summary>
    /// <param name="metadata">Key → value; strings as string, integers as any integer box, arrays as typed arrays.</param>
    /// <param name="source">Names the data in error messages (e.g. the .gguf path).</param>
    public static HfBpeTokenizer FromGgufMetadata(IReadOnlyDictionary<string, object> metadata, string source = "GGUF metadata")
        => new(GgufTokenizerReader.Read(metadata, source),
            DeepSeekEncoding.ForArchitecture(metadata.TryGetValue("general.architecture", out object? arch) ? arch as string : null));

    /// <summary>Where the tokenizer came from (file path or GGUF source name).</summary>
    public string Source { get; }

    public int VocabSize => _idToToken.Length;
    public int? BosId { get; }
    public int? EosId { get; }
    public IReadOnlySet<int> StopIds => _stopIds;
    public IChatTemplate? ChatTemplate { get; }

    /// <summary>The Jinja chat template text from the files (null when none).</summary>
    public string? ChatTemplateText { get; }

    /// <summary>The BOS token's text (e.g. "&lt;｜begin▁of▁sentence｜&gt;"), or null.</summary>
    public string? BosToken { get; }

    /// <summary>Encode(addSpecial: true) prepends BOS.</summary>
    public bool AddsBos { get; }

    /// <summary>Encode(addSpecial: true) appends EOS.</summary>
    public bool AddsEos { get; }

    /// <summary>Added (special and user-defined) tokens, as read.</summary>
    public IReadOnlyList<AddedToken> AddedTokens { get; }

    /// <summary>The Microsoft.ML.Tokenizers model doing the BPE merges (its pre-tokenizer is <see cref="HfPreTokenizer"/>).</summary>
    public BpeTokenizer Model => _bpe;

    /// <summary>The pre-tokenizer (HF semantics).</summary>
    public HfPreTokenizer PreTokenizer => _preTokenizer;

    public int[] Encode(string text, bool addSpecial = false) => Encode(text, addSpecial, CancellationToken.None);

    /// <summary>Encodes, checking <paramref name="cancel"/> between the pieces of the text (added tokens, words).</summary>
    public int[] Encode(string text, bool addSpecial, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(text);
        text = ReplaceLoneSurrogates(text);
        var ids = new List<int>(text.Length / 3 + 4);
        if (addSpecial && AddsBos)
            ids.Add(BosId!.Value);

        var segments = new List<(int Start, int Length, int TokenId)>();
        _rawAdded.Split(text, segments);
        foreach ((int start, int length, int tokenId) in segments)
        {
            cancel.ThrowIfCancellationRequested();
            if (tokenId >= 0)
                ids.Add(tokenId);
            else
            {
                try { EncodeNormalizable(text.AsSpan(start, length), ids); }
                catch (System.Text.RegularExpressions.RegexMatchTimeoutException e)
                {
                    throw new InvalidFileException($"{Source}: the pre_tokenizer pattern {Escape(e.Pattern)} took over " +
                        $"{e.MatchTimeout.TotalSeconds:0.#} s on one piece of a {text.Length}-character text (catastrophic backtracking); fix the Split pattern");
                }
            }
        }

        if (addSpecial && AddsEos)
            ids.Add(EosId!.Value);
        return ids.ToArray();
    }

    private static string Escape(string pattern) => pattern.Length > 80 ? $"'{pattern[..80]}...'" : $"'{pattern}'";

    /// <summary>
    /// A .NET string may hold a lone surrogate, which has no UTF-8 form (HF only ever sees valid Unicode). We encode
    /// it as U+FFFD, as Encoding.UTF8 would; the BPE model would otherwise write invalid 3-byte sequences.
    /// </summary>
    private static string ReplaceLoneSurrogates(string text)
    {
        if (text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
            return text;
        char[]? copy = null;
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
                continue;
            }
            if (char.IsSurrogate(text[i]))
                (copy ??= text.ToCharArray())[i] = '\uFFFD';
        }
        return copy is null ? text : new string(copy);
    }

    private void EncodeNormalizable(ReadOnlySpan<char> text, List<int> ids)
    {
        if (_normalizer is null && _normalizedAdded is null)
        {
            EncodePlain(text, ids);
            return;
        }
        string normalized = _normalizer is null ? text.ToString() : _normalizer.Normalize(text.ToString());
        if (_normalizedAdded is null)
        {
            EncodePlain(normalized, ids);
            return;
        }
        var segments = new List<(int Start, int Length, int TokenId)>();
        _normalizedAdded.Split(normalized, segments);
        foreach ((int start, int length, int tokenId) in segments)
        {
            if (tokenId >= 0)
                ids.Add(tokenId);
            else
                EncodePlain(normalized.AsSpan(start, length), ids);
        }
    }

    private void EncodePlain(ReadOnlySpan<char> text, List<int> ids)
    {
        if (text.IsEmpty)
            return;
        if (!_ignoreMerges)
        {
            // One call: the BPE model runs our pre-tokenizer, then merges each piece.
            ids.AddRange(_bpe.EncodeToIds(text, considerPreTokenization: true, considerNormalization: false));
            return;
        }

        // ignore_merges (Llama 3): a piece that is itself a vocabulary entry is that token, whatever the merges say.
        var pieces = new List<(int Offset, int Length)>();
        _preTokenizer.Split(text, pieces);
        foreach ((int offset, int length) in pieces)
        {
            ReadOnlySpan<char> piece = text.Slice(offset, length);
            if (TryWholePiece(piece, out int id))
                ids.Add(id);
            else
                ids.AddRange(_bpe.EncodeToIds(piece, considerPreTokenization: false, considerNormalization: false));
        }
    }

    private bool TryWholePiece(ReadOnlySpan<char> piece, out int id)
    {
        int maxBytes = Encoding.UTF8.GetMaxByteCount(piece.Length);
        byte[]? rentedBytes = null;
        char[]? rentedChars = null;
        Span<byte> utf8 = maxBytes <= 256 ? stackalloc byte[256] : (rentedBytes = ArrayPool<byte>.Shared.Rent(maxBytes));
        Span<char> mapped = maxBytes <= 256 ? stackalloc char[256] : (rentedChars = ArrayPool<char>.Shared.Rent(maxBytes));
        try
        {
            int n = Encoding.UTF8.GetBytes(piece, utf8);
            ByteLevelAlphabet.Map(utf8[..n], mapped);
            return _tokenLookup.TryGetValue(mapped[..n], out id) && !IsAddedId(id);
        }
        finally
        {
            if (rentedBytes is not null) ArrayPool<byte>.Shared.Return(rentedBytes);
            if (rentedChars is not null) ArrayPool<char>.Shared.Return(rentedChars);
        }
    }

    private bool IsAddedId(int id) => _addedIds.Contains(id);

    public string Decode(ReadOnlySpan<int> ids)
    {
        int total = 0;
        foreach (int id in ids)
            total += TokenBytes(id).Length;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(total, 1));
        try
        {
            int at = 0;
            foreach (int id in ids)
            {
                ReadOnlySpan<byte> b = TokenBytes(id);
                b.CopyTo(buffer.AsSpan(at));
                at += b.Length;
            }
            return Encoding.UTF8.GetString(buffer, 0, total);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The bytes a token stands for; empty for an id inside the range that no token uses.</summary>
    public ReadOnlySpan<byte> TokenBytes(int id)
    {
        if ((uint)id >= (uint)_idToToken.Length)
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the vocabulary (size {_idToToken.Length})");
        return _tokenBytes.AsSpan(_tokenOffsets[id], _tokenOffsets[id + 1] - _tokenOffsets[id]);
    }

    public int? TokenToId(string token) => _tokenToId.TryGetValue(token, out int id) ? id : null;

    /// <summary>The vocabulary string of an id (byte-level alphabet for BPE tokens, plain text for added tokens).</summary>
    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;
}

/// <summary>Everything needed to build an <see cref="HfBpeTokenizer"/>, from tokenizer.json or GGUF.</summary>
internal sealed class BpeDefinition
{
    public required string Source { get; init; }
    public required List<KeyValuePair<string, int>> Vocab { get; init; }
    public required List<string> Merges { get; init; }
    public required List<AddedToken> AddedTokens { get; init; }
    public required HfPreTokenizer PreTokenizer { get; init; }
    /// <summary>At least this many ids (GGUF: the token array, padding included); null: highest id + 1.</summary>
    public int? VocabSize { get; init; }
    public HfNormalizer? Normalizer { get; init; }
    public bool IgnoreMerges { get; init; }
    public string? UnknownToken { get; init; }
    public string? ContinuingSubwordPrefix { get; init; }
    public string? EndOfWordSuffix { get; init; }
    public int? BosId { get; init; }
    public int? EosId { get; init; }
    public bool AddBos { get; init; }
    public bool AddEos { get; init; }
    public List<int> ExtraStopIds { get; init; } = [];
    public string? ChatTemplate { get; init; }
}
