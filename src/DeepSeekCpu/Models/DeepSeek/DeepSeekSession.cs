using DeepSeekCpu.Kernels;

namespace DeepSeekCpu.Models.DeepSeek;

/// <summary>
/// One sequence of a <see cref="DeepSeekModel"/>: the latent KV cache ([c_kv ; k_pe] per token per layer) and every
/// scratch buffer, allocated once here so that decoding allocates nothing. Prompts longer than
/// <see cref="MaxBatch"/> tokens run as several batches.
/// </summary>
public sealed class DeepSeekSession : IModelSession
{
    /// <summary>Tokens per forward batch (bounds the scratch buffers).</summary>
    public const int MaxBatch = 256;
    /// <summary>Tokens per group of absorbed attention (bounds its per-head scratch, [heads, group, kvl]).</summary>
    internal const int AbsorbedTokens = 16;

    private readonly DeepSeekModel _m;
    public int Position { get; private set; }
    public int ContextLength { get; }
    /// <summary>Attention mode of this session (from the model's <see cref="DeepSeekModel.MlaMode"/>; may be changed).</summary>
    public MlaMode Mode { get; set; }

    internal readonly RopeTable Rope;
    internal readonly bool RopeInterleaved;
    internal readonly float SoftmaxScale;
    internal readonly float[][] Cache;            // per layer [ctx, kvl + rope] = [c_kv (normalised) ; k_pe (rotated)]

    // Activations and job objects of a forward pass (B = MaxBatch rows). They belong to the model, shared by all its
    // sessions (passes run one at a time: they share the worker pool), so a server's slots do not each keep them.
    private readonly DeepSeekScratch _scratch;
    internal float[] X => _scratch.X;
    internal float[] Normed => _scratch.Normed;
    internal float[] Out => _scratch.Out;
    internal float[] Q => _scratch.Q;
    internal float[] QA => _scratch.QA;
    internal float[] KV => _scratch.KV;
    internal float[] O => _scratch.O;
    internal float[] Hidden1 => _scratch.Hidden1;
    internal float[] Hidden2 => _scratch.Hidden2;
    internal float[] ExpertIn => _scratch.ExpertIn;
    internal float[] ExpertOut => _scratch.ExpertOut;
    internal float[] RouterLogits => _scratch.RouterLogits;
    internal float[] RouterSelect => _scratch.RouterSelect;
    internal float[] GroupScratch => _scratch.GroupScratch;
    internal int[] Chosen => _scratch.Chosen;
    internal float[] ChosenWeights => _scratch.ChosenWeights;
    internal int[] Slots => _scratch.Slots;
    internal int[] ExpertCount => _scratch.ExpertCount;
    internal int[] ExpertFill => _scratch.ExpertFill;
    internal float[] LastNormed => _scratch.LastNormed;
    internal float[] QNope => _scratch.QNope;
    internal float[] QLat => _scratch.QLat;
    internal float[] OLat => _scratch.OLat;
    internal float[] OHead => _scratch.OHead;
    internal MatMulBatch Batch => _scratch.Batch;
    internal float[]? NaiveLatent => _scratch.NaiveLatent;
    internal float[]? NaiveExpanded => _scratch.NaiveExpanded;
    internal MLA.AbsorbedAttention AbsorbedJob => _scratch.AbsorbedJob;
    internal MLA.NaiveAttention NaiveJob => _scratch.NaiveJob;

    internal DeepSeekSession(DeepSeekModel m, int contextLength)
    {
        if (contextLength < 1) throw new ArgumentOutOfRangeException(nameof(contextLength));
        var c = m.Config;
        _m = m; ContextLength = contextLength; Mode = m.MlaMode;
        Rope = new RopeTable(c, c.QkRopeHeadDim, contextLength);
        RopeInterleaved = m.RopeInterleaved;
        // softmax_scale = (nope + rope)^-0.5, times mscale² under YaRN (model.py MLA.__init__)
        SoftmaxScale = (float)(1.0 / Math.Sqrt(c.QkNopeHeadDim + c.QkRopeHeadDim)) * Rope.AttentionScaleFactor;
        int row = c.KvLoraRank + c.QkRopeHeadDim;
        Cache = new float[c.NumLayers][];
        for (int l = 0; l < c.NumLayers; l++) Cache[l] = new float[(long)contextLength * row];

        _scratch = m.Scratch;
    }

    /// <summary>
    /// Batched decoding across sequences: row t of a forward pass belongs to RowSessions[t] at RowPositions[t] (its
    /// cache, its rope table). Null for the usual case, rows of this session at consecutive positions.
    /// </summary>
    internal DeepSeekSession[]? RowSessions;
    internal int[]? RowPositions;

    internal int RowPosition(int row, int start) => RowPositions == null ? start + row : RowPositions[row];
    internal float[] RowCache(int row, int layer) => RowSessions == null ? Cache[layer] : RowSessions[row].Cache[layer];
    internal RopeTable RowRope(int row) => RowSessions == null ? Rope : RowSessions[row].Rope;

    /// <summary>One decoding step for rows of other sessions (see <see cref="DeepSeekModel.DecodeBatch"/>); this session is scratch.</summary>
    internal void DecodeRows(DeepSeekSession[] sessions, int[] positions, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        var c = _m.Config;
        int n = tokens.Length, dim = c.HiddenSize, vocab = c.VocabSize;
        Monitor.Enter(_scratch);
        RowSessions = sessions; RowPositions = positions;
        try
        {
            var x = X.AsSpan(0, n * dim);                                      // [n, dim]
            for (int t = 0; t < n; t++) Dequantize.RowOf(_m.Embed, tokens[t], x.Slice(t * dim, dim));
            foreach (var block in _m.Layers) block.Forward(this, x, n, 0);
            var h = Normed.AsSpan(0, n * dim);                                 // [n, dim]
            Ops.RmsNormRows(x, _m.FinalNorm, h, n, dim, c.RmsNormEps);
            MatMul.Multiply(_m.Head, h, logits[..(n * vocab)], n);
        }
        finally { RowSessions = null; RowPositions = null; Monitor.Exit(_scratch); }
    }

    public void Forward(ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions = false)
    {
        var c = _m.Config;
        int vocab = c.VocabSize, dim = c.HiddenSize;
        if (tokens.Length == 0) throw new ArgumentException("no tokens to feed");
        if (Position + tokens.Length > ContextLength)
            throw new InvalidOperationException($"context is full: {Position} + {tokens.Length} tokens > {ContextLength}");
        if (logits.Length < (allPositions ? (long)tokens.Length * vocab : vocab))
            throw new ArgumentException($"logits has {logits.Length} values, expected {(allPositions ? tokens.Length : 1)} x {vocab}");
        foreach (int t in tokens)
            if ((uint)t >= (uint)vocab) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {t} is outside the vocabulary (0..{vocab - 1})");

        lock (_scratch)
        for (int done = 0; done < tokens.Length; done += MaxBatch)
        {
            int n = Math.Min(MaxBatch, tokens.Length - done), start = Position;
            var x = X.AsSpan(0, n * dim);                                  // [n, dim]
            for (int t = 0; t < n; t++) Dequantize.RowOf(_m.Embed, tokens[done + t], x.Slice(t * dim, dim));
            foreach (var block in _m.Layers) block.Forward(this, x, n, start);
            Position += n;
            if (allPositions)
            {
                var h = Normed.AsSpan(0, n * dim);                         // [n, dim]
                Ops.RmsNormRows(x, _m.FinalNorm, h, n, dim, c.RmsNormEps);
                MatMul.Multiply(_m.Head, h, logits.Slice(done * vocab, n * vocab), n);
            }
            else if (done + n == tokens.Length)
            {
                Ops.RmsNorm(x.Slice((n - 1) * dim, dim), _m.FinalNorm, LastNormed, c.RmsNormEps);
                MatMul.Multiply(_m.Head, LastNormed, logits[..vocab], 1);
            }
        }
    }

    internal void Advance(int tokens) => Position += tokens;

    public void Truncate(int position)
    {
        if (position < 0 || position > Position) throw new ArgumentOutOfRangeException(nameof(position));
        Position = position;
    }

    internal float[] EnsureNaiveLatent(int length) => _scratch.EnsureNaiveLatent(length);

    internal float[] EnsureNaiveExpanded(int length) => _scratch.EnsureNaiveExpanded(length);

    public void Dispose() { }
}

/// <summary>The activations and job objects of one DeepSeek forward pass (B = MaxBatch rows), one per model.</summary>
internal sealed class DeepSeekScratch
{
    public readonly float[] X;                  // [B, dim] residual stream
    public readonly float[] Normed, Out;        // [B, dim]
    public readonly float[] Q;                  // [B, heads, nope+rope]
    public readonly float[] QA;                 // [B, q_lora]
    public readonly float[] KV;                 // [B, kvl+rope]
    public readonly float[] O;                  // [B, heads, v]
    public readonly float[] Hidden1, Hidden2;   // [B, max inter]
    public readonly float[] ExpertIn, ExpertOut;// [B, dim]
    public readonly float[] RouterLogits;       // [B, n_experts]
    public readonly float[] RouterSelect;       // [n_experts]
    public readonly float[] GroupScratch;       // [2 * n_group]
    public readonly int[] Chosen;               // [B, k]
    public readonly float[] ChosenWeights;      // [B, k]
    public readonly int[] Slots;                // [B * k]
    public readonly int[] ExpertCount;          // [n_experts + 1]
    public readonly int[] ExpertFill;           // [n_experts]
    public readonly float[] LastNormed;         // [dim]
    public readonly float[] QNope;              // [heads, AbsorbedTokens, nope]   absorbed attention, by head
    public readonly float[] QLat, OLat;         // [heads, AbsorbedTokens, kvl]
    public readonly float[] OHead;              // [heads, AbsorbedTokens, v]
    public readonly MatMulBatch Batch = new();  // products issued together (one pool dispatch while decoding)
    public float[]? NaiveLatent;                // [tokens, kvl]            (naive attention only, grows)
    public float[]? NaiveExpanded;              // [tokens, heads, nope+v]  (naive attention only, grows)
    public readonly MLA.AbsorbedAttention AbsorbedJob = new();
    public readonly MLA.NaiveAttention NaiveJob = new();


    public DeepSeekScratch(DeepSeekModel m)
    {
        var c = m.Config;
        int row = c.KvLoraRank + c.QkRopeHeadDim;
        const int B = DeepSeekSession.MaxBatch;
        int dim = c.HiddenSize, k = Math.Max(1, c.NumExpertsPerTok), E = Math.Max(1, c.NRoutedExperts);
        X = new float[B * dim]; Normed = new float[B * dim]; Out = new float[B * dim];
        Q = new float[B * c.NumHeads * (c.QkNopeHeadDim + c.QkRopeHeadDim)];
        QA = new float[B * (c.QLoraRank ?? 0)];
        KV = new float[B * row];
        O = new float[B * c.NumHeads * c.VHeadDim];
        Hidden1 = new float[B * m.MaxInter]; Hidden2 = new float[B * m.MaxInter];
        ExpertIn = new float[B * dim]; ExpertOut = new float[B * dim];
        RouterLogits = new float[B * E]; RouterSelect = new float[E]; GroupScratch = new float[2 * Math.Max(1, c.NGroup)];
        Chosen = new int[B * k]; ChosenWeights = new float[B * k]; Slots = new int[B * k];
        ExpertCount = new int[E + 1]; ExpertFill = new int[E];
        LastNormed = new float[dim];
        int groupHeads = DeepSeekSession.AbsorbedTokens * c.NumHeads;
        QNope = new float[groupHeads * c.QkNopeHeadDim];
        QLat = new float[groupHeads * c.KvLoraRank]; OLat = new float[groupHeads * c.KvLoraRank];
        OHead = new float[groupHeads * c.VHeadDim];
    }

    public float[] EnsureNaiveLatent(int length) =>
        NaiveLatent is { } a && a.Length >= length ? a : (NaiveLatent = new float[Math.Max(length, (NaiveLatent?.Length ?? 0) * 2)]);

    public float[] EnsureNaiveExpanded(int length) =>
        NaiveExpanded is { } a && a.Length >= length ? a : (NaiveExpanded = new float[Math.Max(length, (NaiveExpanded?.Length ?? 0) * 2)]);
}
