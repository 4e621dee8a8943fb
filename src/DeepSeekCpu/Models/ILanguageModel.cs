namespace DeepSeekCpu.Models;

/// <summary>A loaded model graph (Llama/Qwen2 or DeepSeek MLA+MoE) over its weights.</summary>
public interface ILanguageModel : IDisposable
{
    ModelConfig Config { get; }
    ModelWeights Weights { get; }

    /// <summary>A new sequence with its own KV cache of up to <paramref name="contextLength"/> tokens.</summary>
    IModelSession NewSession(int contextLength);

    /// <summary>KV cache bytes per token (all layers), as the cache stores them.</summary>
    long KvBytesPerToken { get; }

    /// <summary>
    /// Bytes of weights one decoded token reads (every matrix it multiplies by, with MoE only the chosen experts and
    /// the shared ones): the numerator of the decode roofline, tokens/s ≤ bandwidth / this.
    /// </summary>
    long WeightBytesPerToken { get; }

    /// <summary>
    /// One decoding step for several sequences: row i feeds <paramref name="tokens"/>[i] to <paramref name="sessions"/>[i]
    /// (each at its own position) and writes its logits to row i of <paramref name="logits"/> [n, vocab]. Models that
    /// batch it read their weights once for all rows (continuous batching); this default feeds them one by one.
    /// </summary>
    void DecodeBatch(IReadOnlyList<IModelSession> sessions, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        int vocab = Config.VocabSize;
        if (tokens.Length != sessions.Count) throw new ArgumentException($"{tokens.Length} tokens for {sessions.Count} sessions");
        for (int i = 0; i < sessions.Count; i++) sessions[i].Forward(tokens.Slice(i, 1), logits.Slice(i * vocab, vocab));
    }
}

/// <summary>One sequence: its KV cache and scratch buffers. Not thread-safe; many sessions may share a model.</summary>
public interface IModelSession : IDisposable
{
    /// <summary>Tokens already in the cache (the position of the next token).</summary>
    int Position { get; }
    int ContextLength { get; }

    /// <summary>
    /// Feeds <paramref name="tokens"/> at positions [Position, Position + n) as one batch (prompt processing is
    /// matrix-matrix) and appends them to the cache. Writes the logits of the last token into
    /// <paramref name="logits"/> (vocab values), or of every token (n x vocab) when <paramref name="allPositions"/>.
    /// </summary>
    void Forward(ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions = false);

    /// <summary>Forgets cached tokens from <paramref name="position"/> on (to reuse a common prefix).</summary>
    void Truncate(int position);
}
