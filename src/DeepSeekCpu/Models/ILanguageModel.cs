using DeepSeekCpu.Weights;
namespace DeepSeekCpu.Models;

/// <summary>
/// A loaded model graph (Llama/Qwen2 or DeepSeek MLA+MoE) over its weights: <see cref="Info"/> describes it,
/// <see cref="NewSession"/> starts a sequence that computes logits. Implemented by the engine's graphs (and the
/// TorchSharp backend); its configuration and weights are internal to the engine.
/// </summary>
public interface ILanguageModel : IDisposable
{
    internal ModelConfig Config { get; }
    internal ModelWeights Weights { get; }

    /// <summary>The model's shape, limits and memory (computed on each call).</summary>
    ModelInfo Info => ModelInfo.Of(this);

    /// <summary>
    /// A new sequence with its own KV cache of up to <paramref name="contextLength"/> tokens, capped at the model's
    /// max_position_embeddings (<see cref="IModelSession.ContextLength"/> says what it got); less than 1 is an error.
    /// </summary>
    IModelSession NewSession(int contextLength);

    /// <summary>KV cache bytes per token (all layers), as the cache stores them.</summary>
    internal long KvBytesPerToken { get; }

    /// <summary>
    /// Bytes of weights one decoded token reads (every matrix it multiplies by, with MoE only the chosen experts and
    /// the shared ones): the numerator of the decode roofline, tokens/s ≤ bandwidth / this.
    /// </summary>
    internal long WeightBytesPerToken { get; }

    /// <summary>
    /// One decoding step for several sequences: row i feeds <paramref name="tokens"/>[i] to <paramref name="sessions"/>[i]
    /// (each at its own position) and writes its logits to row i of <paramref name="logits"/> [n, vocab]. Models that
    /// batch it read their weights once for all rows (continuous batching); this default feeds them one by one.
    /// Both model families check the same things: one token per session, logits room for n rows, sessions of this
    /// model, each at most once and with room for one more token, token ids in the vocabulary; no sessions is a no-op.
    /// </summary>
    void DecodeBatch(IReadOnlyList<IModelSession> sessions, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        int vocab = Config.VocabSize;
        if (tokens.Length != sessions.Count) throw new ArgumentException($"{tokens.Length} tokens for {sessions.Count} sessions");
        for (int i = 0; i < sessions.Count; i++) sessions[i].Forward(tokens.Slice(i, 1), logits.Slice(i * vocab, vocab));
    }
}

/// <summary>
/// Sees the residual stream after each transformer block of a forward pass (tests compare it with a reference
/// implementation layer by layer, so a disagreement is reported where it starts). Called on the thread that runs the
/// pass; the span is only valid during the call.
/// </summary>
internal interface ILayerObserver
{
    /// <summary><paramref name="hidden"/> is [rows, dim]: the pass's rows after block <paramref name="layer"/>.</summary>
    void AfterBlock(int layer, ReadOnlySpan<float> hidden, int rows);
}

/// <summary>One sequence: its KV cache and scratch buffers. Not thread-safe; many sessions may share a model.</summary>
public interface IModelSession : IDisposable
{
    /// <summary>Tokens already in the cache (the position of the next token).</summary>
    int Position { get; }
    /// <summary>Most tokens this sequence can hold: what <see cref="ILanguageModel.NewSession"/> was asked for, capped at the model's maximum.</summary>
    int ContextLength { get; }

    /// <summary>
    /// Feeds <paramref name="tokens"/> at positions [Position, Position + n) as one batch (prompt processing is
    /// matrix-matrix) and appends them to the cache. Writes the logits of the last token into
    /// <paramref name="logits"/> (vocab values), or of every token (n x vocab) when <paramref name="allPositions"/>.
    /// No tokens, or more than the context has room for, is an error.
    /// </summary>
    void Forward(ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions = false);

    /// <summary>
    /// Forgets cached tokens from <paramref name="position"/> on (to reuse a common prefix); a position outside
    /// 0..<see cref="Position"/> is an error.
    /// </summary>
    void Truncate(int position);
}
