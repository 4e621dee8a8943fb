using DeepSeekCpu.Kernels;

namespace DeepSeekCpu.Models;

/// <summary>
/// What both model families share about a sequence: its position and context length, and what Truncate means. The
/// cache itself is the model's (<see cref="Llama.LlamaSession"/>, <see cref="DeepSeek.DeepSeekSession"/>).
/// </summary>
internal abstract class ModelSession : IModelSession
{
    public int Position { get; internal set; }
    public int ContextLength { get; }

    /// <summary>The model whose cache layout this session holds (a batch checks that every row belongs to it).</summary>
    internal abstract object Owner { get; }

    protected ModelSession(int contextLength) => ContextLength = contextLength;

    public abstract void Forward(ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions = false);

    /// <summary>Forgets the cached tokens from <paramref name="position"/> on; it must lie in 0..Position.</summary>
    public void Truncate(int position)
    {
        if (position < 0 || position > Position)
            throw new ArgumentOutOfRangeException(nameof(position), $"cannot truncate to {position}: the session holds {Position} tokens");
        Position = position;
    }

    public virtual void Dispose() { }
}

/// <summary>
/// Which sequence and position each row of one forward pass is: n rows of one session at consecutive positions (a
/// prompt chunk) or one row per session (a batched decoding step). The graph asks each row for its own cache and
/// position and never needs to know which of the two it runs.
/// </summary>
internal sealed class BatchRows<TSession> where TSession : ModelSession
{
    public int Count { get; private set; }
    public TSession[] Sessions { get; private set; } = [];    // [Count] the row's sequence
    public int[] Positions { get; private set; } = [];        // [Count] the row's position in it
    private KvCache[][] _caches = [[], []];                   // [2][Count] one layer's caches of each row (e.g. K and V)

    /// <summary>All rows are one sequence at consecutive positions (a prompt chunk).</summary>
    public bool OneSequence { get; private set; }

    public void Prompt(TSession s, int n)
    {
        Reset(n);
        for (int t = 0; t < n; t++) { Sessions[t] = s; Positions[t] = s.Position + t; }
        OneSequence = true;
    }

    public void Decode(ReadOnlySpan<TSession> sessions)
    {
        Reset(sessions.Length);
        for (int t = 0; t < sessions.Length; t++) { Sessions[t] = sessions[t]; Positions[t] = sessions[t].Position; }
        OneSequence = sessions.Length == 1;
    }

    /// <summary>
    /// Each row's array of one layer's cache, [Count] (e.g. <c>static (s, l) => s.KCache[l]</c>, a non-capturing lambda
    /// that allocates nothing); <paramref name="slot"/> 0 or 1 keeps two such lists at once (keys and values).
    /// </summary>
    public KvCache[] Caches(int layer, Func<TSession, int, KvCache> select, int slot = 0)
    {
        var caches = _caches[slot];
        for (int t = 0; t < Count; t++) caches[t] = select(Sessions[t], layer);
        return caches;
    }

    /// <summary>Drops the references to sessions after a pass.</summary>
    public void Clear()
    {
        Array.Clear(Sessions, 0, Count);
        Array.Clear(_caches[0], 0, Count);
        Array.Clear(_caches[1], 0, Count);
        Count = 0;
    }

    private void Reset(int n)
    {
        if (Sessions.Length < n)
        {
            int c = Math.Max(n, 2 * Sessions.Length);            // grown, then reused: decoding allocates nothing
            Sessions = new TSession[c]; Positions = new int[c]; _caches = [new KvCache[c], new KvCache[c]];
        }
        Count = n;
    }
}

/// <summary>One forward pass of a model over the rows of a batch (what each family implements).</summary>
internal interface IForwardPass<TSession> where TSession : ModelSession
{
    /// <summary>
    /// Runs tokens[t] at rows[t] for every row, appending to each row's cache, and writes the logits of rows
    /// firstLogitRow..Count-1 to <paramref name="logits"/> [Count - firstLogitRow, vocab].
    /// </summary>
    void Run(BatchRows<TSession> rows, ReadOnlySpan<int> tokens, Span<float> logits, int firstLogitRow);
}

/// <summary>
/// The batch contract of both model families, validated in one place: a session's Forward (prompt chunks of up to
/// <c>maxRows</c> tokens) and a model's DecodeBatch (one token for each of several sessions) become forward passes
/// over <see cref="BatchRows{TSession}"/>, one at a time under one lock (passes share the model's pass buffers and
/// the worker pool).
/// </summary>
internal sealed class BatchContract<TSession>(ModelConfig config, int maxRows, IForwardPass<TSession> pass) where TSession : ModelSession
{
    private readonly Lock _lock = new();
    private readonly BatchRows<TSession> _rows = new();
    private TSession[] _batch = [];

    /// <summary>Rows per forward pass: longer prompts run as several passes.</summary>
    public int MaxRows => maxRows;

    public void Forward(TSession s, ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions)
    {
        int n = tokens.Length, vocab = config.VocabSize;
        if (n == 0) throw new ArgumentException("no tokens to feed", nameof(tokens));
        if ((long)s.Position + n > s.ContextLength)
            throw new InvalidOperationException($"context full: {s.Position} + {n} tokens exceed the context length {s.ContextLength}");
        if (logits.Length < (allPositions ? (long)n * vocab : vocab))
            throw new ArgumentException($"logits has {logits.Length} values, expected {(allPositions ? n : 1)} x {vocab}", nameof(logits));
        CheckVocabulary(tokens);
        lock (_lock)
        {
            for (int done = 0; done < n; done += maxRows)
            {
                int m = Math.Min(maxRows, n - done);
                bool last = done + m == n;
                _rows.Prompt(s, m);
                try
                {
                    if (allPositions) pass.Run(_rows, tokens.Slice(done, m), logits.Slice(done * vocab, m * vocab), 0);
                    else pass.Run(_rows, tokens.Slice(done, m), logits[..vocab], last ? m - 1 : m);
                }
                finally { _rows.Clear(); }
                s.Position += m;
            }
        }
    }

    public void DecodeBatch(IReadOnlyList<IModelSession> sessions, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        int n = sessions.Count, vocab = config.VocabSize;
        if (tokens.Length != n) throw new ArgumentException($"{tokens.Length} tokens for {n} sessions", nameof(tokens));
        if (logits.Length < (long)n * vocab) throw new ArgumentException($"logits has {logits.Length} values, expected {n} x {vocab}", nameof(logits));
        CheckVocabulary(tokens);
        if (n == 0) return;
        lock (_lock)
        {
            if (_batch.Length < n) _batch = new TSession[Math.Max(n, 2 * _batch.Length)];
            try
            {
                for (int i = 0; i < n; i++)
                {
                    var s = sessions[i] as TSession;
                    if (s == null || !ReferenceEquals(s.Owner, pass)) throw new ArgumentException($"session {i} belongs to another model", nameof(sessions));
                    if (s.Position + 1 > s.ContextLength) throw new InvalidOperationException($"context full: session {i} holds {s.Position} of {s.ContextLength} tokens");
                    if (Array.IndexOf(_batch, s, 0, i) >= 0) throw new ArgumentException($"session {i} appears twice in one batch", nameof(sessions));
                    _batch[i] = s;
                }
                for (int done = 0; done < n; done += maxRows)
                {
                    int m = Math.Min(maxRows, n - done);
                    _rows.Decode(_batch.AsSpan(done, m));
                    try { pass.Run(_rows, tokens.Slice(done, m), logits.Slice(done * vocab, m * vocab), 0); }
                    finally { _rows.Clear(); }
                    for (int i = done; i < done + m; i++) _batch[i].Position++;
                }
            }
            finally { Array.Clear(_batch, 0, n); }
        }
    }

    private void CheckVocabulary(ReadOnlySpan<int> tokens)
    {
        foreach (int t in tokens)
            if ((uint)t >= (uint)config.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {t} is outside the vocabulary (0..{config.VocabSize - 1})");
    }
}
