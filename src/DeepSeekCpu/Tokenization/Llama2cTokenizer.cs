using System.Buffers.Binary;
using System.Text;

namespace DeepSeekCpu.Tokenization;

/// <summary>
/// The tokenizer of karpathy/llama2.c (<c>tokenizer.bin</c>, exported from a SentencePiece BPE model by its
/// <c>tokenizer.py</c>). File layout, as read by <c>build_tokenizer</c> in llama2.c <c>run.c</c>, little-endian:
/// <c>int32 max_token_length</c>, then for each of <c>vocab_size</c> tokens: <c>float32 score</c>, <c>int32 len</c>,
/// <c>len</c> raw bytes (not NUL-terminated). The vocabulary size is not in the file; it comes from the model header.
/// Ids 0, 1, 2 are &lt;unk&gt;, &lt;s&gt; (BOS) and &lt;/s&gt; (EOS); ids 3..258 are the byte pieces <c>&lt;0x00&gt;</c>..<c>&lt;0xFF&gt;</c>.
/// </summary>
internal sealed class Llama2cTokenizer : ITokenizer, IContextualTokenizer
{
    public const int UnkId = 0;
    public const int BosToken = 1;
    public const int EosToken = 2;

    // Byte-fallback ids are the byte value plus 3, because ids 0..2 are <unk>, <s>, </s> (run.c encode()).
    private const int ByteFallbackOffset = 3;

    private readonly string[] _pieces;   // each piece's raw bytes viewed as Latin-1 chars (one char per byte)
    private readonly byte[][] _output;   // what a piece stands for on decode: "<0xXX>" pieces become the one raw byte
    private readonly float[] _scores;
    private readonly Dictionary<string, int> _lookup;  // Latin-1 piece → id (llama2.c's str_lookup)
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _spanLookup;
    private readonly int _dummyPrefixId;
    private readonly int _longestPiece;  // in chars (bytes): what the merge loop's buffer must hold, whatever the header claims
    private static readonly IReadOnlySet<int> s_stopIds = new HashSet<int> { BosToken, EosToken };

    private Llama2cTokenizer(int maxTokenLength, string[] pieces, float[] scores)
    {
        MaxTokenLength = maxTokenLength;
        _pieces = pieces;
        _scores = scores;
        _lookup = new Dictionary<string, int>(pieces.Length, StringComparer.Ordinal);
        _output = new byte[pieces.Length][];
        for (int i = 0; i < pieces.Length; i++)
        {
            // llama2.c looks pieces up with bsearch over a sorted copy, so which id a duplicated piece gets is
            // unspecified there; we take the lowest id.
            _lookup.TryAdd(pieces[i], i);
            _longestPiece = Math.Max(_longestPiece, pieces[i].Length);
            _output[i] = TryParseBytePiece(pieces[i], out byte b) ? [b] : Encoding.Latin1.GetBytes(pieces[i]);
        }
        _spanLookup = _lookup.GetAlternateLookup<ReadOnlySpan<char>>();
        _dummyPrefixId = _lookup.TryGetValue(" ", out int space) ? space : -1;
    }

    /// <summary>The longest piece in bytes, as stored in the file header.</summary>
    public int MaxTokenLength { get; }

    public int VocabSize => _pieces.Length;
    public int? BosId => BosToken;
    public int? EosId => EosToken;

    /// <summary>
    /// EOS, and also BOS: llama2.c's generate loop stops when the model emits BOS, which delimits stories in the
    /// TinyStories training data (run.c: "the BOS (=1) token delimits sequences").
    /// </summary>
    public IReadOnlySet<int> StopIds => s_stopIds;

    public IChatTemplate? ChatTemplate => null;

    /// <summary>Score of a token (higher merges first).</summary>
    public float Score(int id) => _scores[CheckId(id)];

    /// <summary>Reads <paramref name="path"/>; <paramref name="vocabSize"/> comes from the model checkpoint header.</summary>
    /// <exception cref="InvalidFileException">One line naming the file and what was expected.</exception>
    public static Llama2cTokenizer Load(string path, int vocabSize)
    {
        byte[] data;
        try
        {
            data = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidFileException($"{path}: cannot read llama2.c tokenizer ({e.Message})", e);
        }
        return Parse(data, vocabSize, path);
    }

    /// <summary>Parses tokenizer.bin contents; <paramref name="source"/> names the data in error messages.</summary>
    public static Llama2cTokenizer Parse(ReadOnlySpan<byte> data, int vocabSize, string source)
    {
        if (vocabSize <= ByteFallbackOffset + 256)
            throw new InvalidFileException($"{source}: vocab_size {vocabSize} is too small for a llama2.c tokenizer (expected more than 259: <unk>, <s>, </s> and 256 byte pieces)");
        if (data.Length < 4)
            throw new InvalidFileException($"{source}: expected a 4-byte max_token_length header, file has {data.Length} bytes");

        int maxTokenLength = BinaryPrimitives.ReadInt32LittleEndian(data);
        if (maxTokenLength <= 0)
            throw new InvalidFileException($"{source}: expected a positive max_token_length, found {maxTokenLength}");

        var pieces = new string[vocabSize];
        var scores = new float[vocabSize];
        int offset = 4;
        for (int i = 0; i < vocabSize; i++)
        {
            if (data.Length - offset < 8)
                throw new InvalidFileException($"{source}: truncated at token {i} of {vocabSize}: expected float score and int32 length at byte {offset}, file has {data.Length} bytes");
            scores[i] = BinaryPrimitives.ReadSingleLittleEndian(data[offset..]);
            int len = BinaryPrimitives.ReadInt32LittleEndian(data[(offset + 4)..]);
            offset += 8;
            if (len < 0 || len > data.Length - offset)
                throw new InvalidFileException($"{source}: truncated at token {i} of {vocabSize}: expected {len} piece bytes at byte {offset}, file has {data.Length} bytes");
            pieces[i] = Encoding.Latin1.GetString(data.Slice(offset, len));
            offset += len;
        }
        return new Llama2cTokenizer(maxTokenLength, pieces, scores);
    }

    /// <summary>
    /// llama2.c's <c>encode</c>: a dummy-prefix " " token when the text is non-empty (SentencePiece add_dummy_prefix),
    /// one token per UTF-8 character or its bytes as byte-fallback tokens, then repeatedly merge the adjacent pair whose
    /// concatenation is in the vocabulary with the highest score (the first such pair wins ties).
    /// With <paramref name="addSpecial"/> BOS is prepended (run.c's generate calls encode with bos=1, eos=0).
    /// </summary>
    public int[] Encode(string text, bool addSpecial = false) => Encode(text, addSpecial, out _);

    /// <summary>
    /// <see cref="Encode(string, bool)"/> that also counts the adjacent pairs looked up in the vocabulary by the merge
    /// loop: its work, at most 3 per initial token here (tests check it stays linear; run.c's rescan is quadratic).
    /// </summary>
    internal int[] Encode(string text, bool addSpecial, out long pairLookups)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = new List<int>(text.Length + 2);
        if (addSpecial)
            tokens.Add(BosToken);
        if (text.Length > 0 && _dummyPrefixId >= 0)
            tokens.Add(_dummyPrefixId);

        byte[] utf8 = Encoding.UTF8.GetBytes(text);
        Span<char> group = stackalloc char[4];
        int i = 0;
        while (i < utf8.Length)
        {
            // A character is its lead byte plus the continuation bytes (10xxxxxx) that follow, at most 4 bytes.
            int len = 1;
            while (i + len < utf8.Length && (utf8[i + len] & 0xC0) == 0x80 && len < 4)
                len++;
            for (int k = 0; k < len; k++)
                group[k] = (char)utf8[i + k];
            if (_spanLookup.TryGetValue(group[..len], out int id))
            {
                tokens.Add(id);
            }
            else
            {
                for (int k = 0; k < len; k++)
                    tokens.Add(utf8[i + k] + ByteFallbackOffset);
            }
            i += len;
        }

        pairLookups = MergeByScore(tokens);
        return tokens.ToArray();
    }

    /// <summary>
    /// run.c's merge loop (merge the adjacent pair with the highest score, the leftmost on ties, until none is in the
    /// vocabulary) without its rescan of the whole text per merge, which is quadratic: 64K characters took 40 s. The
    /// tokens form a linked list; every mergeable pair waits in a priority queue ordered by (score descending, left
    /// position ascending), and a pair taken from it is used only if both tokens are still what they were when it was
    /// queued. Merging a pair queues the two pairs it forms with its neighbours. O(n log n), same output.
    /// Returns the number of pairs looked up: n - 1 at the start and at most 2 per merge, so below 3n.
    /// </summary>
    private long MergeByScore(List<int> tokens)
    {
        int n = tokens.Count;
        if (n < 2)
            return 0;
        long lookups = 0;
        int[] token = tokens.ToArray();
        int[] next = new int[n], prev = new int[n], version = new int[n];   // [n] each; next = -1 at the end, -2 once merged away
        for (int i = 0; i < n; i++)
        {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        // a pair longer than the longest piece is no piece; the header's max_token_length is only a claim (2^28 was
        // once a 1 GB buffer here)
        char[] buffer = new char[_longestPiece];
        var queue = new PriorityQueue<Merge, (float Score, int Left)>(n, s_mergeOrder);
        for (int i = 0; i + 1 < n; i++)
            lookups += QueuePair(i, token, next, version, buffer, queue);
        while (queue.TryDequeue(out Merge m, out _))
        {
            if (next[m.Left] != m.Right || version[m.Left] != m.LeftVersion || version[m.Right] != m.RightVersion)
                continue; // one of its tokens was merged with another neighbour since
            token[m.Left] = m.Id;
            version[m.Left]++;
            int after = next[m.Right];
            next[m.Left] = after;
            if (after >= 0)
                prev[after] = m.Left;
            next[m.Right] = -2;
            if (prev[m.Left] >= 0)
                lookups += QueuePair(prev[m.Left], token, next, version, buffer, queue);
            lookups += QueuePair(m.Left, token, next, version, buffer, queue);
        }
        tokens.Clear();
        for (int i = 0; i >= 0; i = next[i])
            tokens.Add(token[i]);
        return lookups;
    }

    private readonly record struct Merge(int Left, int Right, int LeftVersion, int RightVersion, int Id);

    /// <summary>Higher score first; on equal scores the pair further left, as run.c's scan finds it first.</summary>
    private static readonly Comparer<(float Score, int Left)> s_mergeOrder =
        Comparer<(float Score, int Left)>.Create((x, y) => x.Score != y.Score ? y.Score.CompareTo(x.Score) : x.Left.CompareTo(y.Left));

    /// <summary>Queues the pair starting at token <paramref name="left"/> when its concatenation is a piece; returns 1 if there was a pair to look up.</summary>
    private int QueuePair(int left, int[] token, int[] next, int[] version, char[] buffer, PriorityQueue<Merge, (float, int)> queue)
    {
        int right = next[left];
        if (right < 0)
            return 0;
        string a = _pieces[token[left]], b = _pieces[token[right]];
        int length = a.Length + b.Length;
        if (length > buffer.Length)
            return 1; // longer than any piece in the vocabulary, so not a piece
        a.CopyTo(buffer);
        b.CopyTo(buffer.AsSpan(a.Length));
        // run.c starts its best score at -1e10 and takes only scores above it (a NaN score is never taken)
        if (_spanLookup.TryGetValue(buffer.AsSpan(0, length), out int id) && _scores[id] > -1e10f)
            queue.Enqueue(new Merge(left, right, version[left], version[right], id), (_scores[id], left));
        return 1;
    }

    /// <summary>
    /// Joins the pieces, turning "&lt;0xXX&gt;" pieces into raw bytes, and drops the leading space of a piece that follows
    /// BOS (run.c decode(): the SentencePiece decoder strips it). Invalid UTF-8 becomes U+FFFD.
    /// </summary>
    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>(ids.Length * 4);
        int previous = -1;
        foreach (int id in ids)
        {
            bytes.AddRange(TokenBytes(id, previous));
            previous = id;
        }
        return Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes));
    }

    /// <summary>The bytes a token stands for, without the after-BOS space rule (see <see cref="TokenBytes(int, int)"/>).</summary>
    public ReadOnlySpan<byte> TokenBytes(int id) => _output[CheckId(id)];

    /// <summary>The bytes a token stands for when it follows <paramref name="previousId"/> (-1: none).</summary>
    public ReadOnlySpan<byte> TokenBytes(int id, int previousId)
    {
        ReadOnlySpan<byte> bytes = _output[CheckId(id)];
        if (previousId == BosToken && bytes.Length > 0 && bytes[0] == (byte)' ')
            return bytes[1..];
        return bytes;
    }

    /// <summary>Id of a piece given as text (its UTF-8 bytes are looked up), or null.</summary>
    public int? TokenToId(string token)
    {
        string key = Encoding.Latin1.GetString(Encoding.UTF8.GetBytes(token));
        return _lookup.TryGetValue(key, out int id) ? id : null;
    }

    /// <summary>The stored piece of a token as text (a "&lt;0xXX&gt;" piece is returned as written).</summary>
    public string Piece(int id) => Encoding.UTF8.GetString(Encoding.Latin1.GetBytes(_pieces[CheckId(id)]));

    private int CheckId(int id)
    {
        if ((uint)id >= (uint)_pieces.Length)
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the vocabulary (size {_pieces.Length})");
        return id;
    }

    // run.c decode() recognises byte pieces with sscanf(piece, "<0x%02hhX>"); we accept exactly "<0x" + 2 hex + ">".
    private static bool TryParseBytePiece(string piece, out byte value)
    {
        value = 0;
        if (piece.Length != 6 || !piece.StartsWith("<0x", StringComparison.Ordinal) || piece[5] != '>')
            return false;
        return byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out value);
    }
}
