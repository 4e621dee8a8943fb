using DeepSeekCpu.Kernels;

namespace DeepSeekCpu.Models.DeepSeek.V4;

/// <summary>
/// One sequence of a <see cref="DeepSeekV4Model"/>. Its caches, per layer (inference/model.py Attention.kv_cache,
/// Compressor.kv_state/score_state, Indexer.kv_cache):
/// - the sliding window: the latest kv rows [head_dim] in a ring of sliding_window + <see cref="MaxBatch"/> slots
///   (the extra slots let every row of a prompt chunk be written before any of them attends);
/// - compressed layers: one entry [head_dim] per compress_ratio tokens, and the compressor's running state (the
///   projections of the unfinished block, and of the previous one when blocks overlap);
/// - CSA layers (ratio 4) also the indexer's own compressed keys [index_head_dim] and compressor state.
/// The window and the compressors' states cannot be rewound, so after <see cref="ModelSession.Truncate"/> the next
/// forward pass first replays the kept tokens (from <see cref="Tokens"/>) into fresh state.
/// </summary>
internal sealed class V4Session : ModelSession
{
    /// <summary>Rows per forward pass (bounds the pass buffers and the window ring's extra slots).</summary>
    public const int MaxBatch = 128;

    private readonly DeepSeekV4Model _m;
    internal readonly KvCache[] Window;                 // per layer ring [window + MaxBatch, head_dim]
    internal readonly KvCache?[] Compressed;            // per layer [ctx / ratio, head_dim]; null on window-only layers
    internal readonly KvCache?[] IndexKeys;             // per layer [ctx / 4, index_head_dim]; null unless CSA
    internal readonly CompressorState?[] KvState;       // per layer: the attention compressor's state
    internal readonly CompressorState?[] IndexState;    // per layer: the indexer compressor's state
    internal readonly int[] Tokens;                     // [ctx] the tokens fed so far (replayed after Truncate)
    internal int Valid;                                 // tokens whose effects the caches hold
    internal override object Owner => _m;

    internal V4Session(DeepSeekV4Model m, int contextLength, KvCacheType type) : base(contextLength)
    {
        var c = m.Config; var v4 = c.V4!;
        _m = m;
        int layers = c.NumLayers;
        Window = new KvCache[layers]; Compressed = new KvCache?[layers]; IndexKeys = new KvCache?[layers];
        KvState = new CompressorState?[layers]; IndexState = new CompressorState?[layers];
        Tokens = new int[contextLength];
        for (int l = 0; l < layers; l++)
        {
            int ratio = v4.CompressRatios[l];
            Window[l] = new KvCache(type, c.HeadDim, v4.SlidingWindow + MaxBatch);
            if (ratio == 0) continue;
            Compressed[l] = new KvCache(type, c.HeadDim, contextLength / ratio + 1);
            KvState[l] = new CompressorState(ratio, c.HeadDim);
            if (ratio != 4) continue;
            IndexKeys[l] = new KvCache(type, c.IndexHeadDim, contextLength / ratio + 1);
            IndexState[l] = new CompressorState(ratio, c.IndexHeadDim);
        }
    }

    /// <summary>Bytes of cache allocated so far (windows, compressed entries and index keys of all layers).</summary>
    public long CacheBytes => Window.Sum(k => k.AllocatedBytes) + Compressed.Sum(k => k?.AllocatedBytes ?? 0) + IndexKeys.Sum(k => k?.AllocatedBytes ?? 0);

    public override void Forward(ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions = false)
    {
        CatchUp();
        _m.Contract.Forward(this, tokens, logits, allPositions);
    }

    /// <summary>After a Truncate: forget everything and feed the kept tokens again, so the states match the position.</summary>
    internal void CatchUp()
    {
        if (Valid == Position) return;
        int keep = Position;
        foreach (var s in KvState) s?.Reset();
        foreach (var s in IndexState) s?.Reset();
        Position = Valid = 0;
        if (keep > 0) _m.Contract.Forward(this, Tokens.AsSpan(0, keep), new float[_m.Config.VocabSize], allPositions: false);
    }
}

/// <summary>
/// A compressor's running state (inference/model.py Compressor.kv_state / score_state): rows [coff · ratio,
/// coff · d] of projected kv and gate scores (ape added) of the unfinished block; with overlapping blocks (ratio 4,
/// coff 2) rows 0..ratio hold the previous block and rows ratio..2·ratio the current one. Scores start at −∞, so
/// rows never written weigh nothing.
/// </summary>
internal sealed class CompressorState
{
    public readonly float[] Kv, Score;

    public CompressorState(int ratio, int d)
    {
        int coff = ratio == 4 ? 2 : 1;
        Kv = new float[coff * ratio * coff * d];
        Score = new float[Kv.Length];
        Reset();
    }

    public void Reset()
    {
        Array.Clear(Kv);
        Array.Fill(Score, float.NegativeInfinity);
    }
}

/// <summary>The activations of one V4 forward pass over up to <see cref="Rows"/> rows (R), one set per model.</summary>
internal sealed class V4Pass
{
    public readonly int Rows;
    public readonly float[] H;                  // [R, hc, dim] the hyper-connection streams (the residual)
    public readonly float[] X, Out;             // [R, dim] a sub-layer's (collapsed, normed) input, its output
    public readonly float[] Mixes;              // [R, (2+hc)·hc]
    public readonly float[] Pre, Post, Comb;    // [R, hc], [R, hc], [R, hc, hc]
    public readonly float[] Streams;            // [hc, dim] scratch of hc_post
    public readonly float[] QR;                 // [R, q_lora] normalised q latent
    public readonly float[] Q, O;               // [R, heads, head_dim]
    public readonly float[] KV;                 // [R, head_dim]
    public readonly float[] CompKv, CompScore;  // [R, 2·head_dim] compressor projections
    public readonly float[] IdxKv, IdxScore;    // [R, 2·index_head_dim] indexer compressor projections
    public readonly float[] IdxQ;               // [R, index_heads, index_head_dim]
    public readonly float[] IdxWeights;         // [R, index_heads]
    public readonly float[] OGroup;             // [R, heads·head_dim / o_groups] one group of o, gathered
    public readonly float[] OLow, OLowGroup;    // [R, o_groups·o_lora], [R, o_lora]
    public readonly int[] EntryLast;            // [R] each row's last compressed entry (−1: none yet)
    public readonly int[] Counts;               // [R] compressed entries each row attends to
    public int[] Selected = [];                 // [R, stride] their indices
    public readonly float[] RouterLogits;       // [R, experts]
    public readonly float[] RouterSelect;       // [experts]
    public readonly int[] ExpertRows;           // [R·k] the (row, slot) pairs of one expert
    public readonly int[] Chosen;               // [R, k]
    public readonly float[] ChosenWeights;      // [R, k]
    public readonly float[] ExpertIn, ExpertOut;// [R·k, dim] one expert's rows, gathered
    public readonly float[] Gate, Up;           // [R·k, moe_inter]
    public readonly float[] RowScale;           // [R·k] their routing weights

    public V4Pass(ModelConfig c, int rows)
    {
        var v4 = c.V4!;
        int R = Rows = rows, D = c.HiddenSize, hc = v4.HcMult, hd = c.HeadDim, ih = Math.Max(1, c.IndexNHeads), ihd = Math.Max(1, c.IndexHeadDim);
        H = new float[R * hc * D]; X = new float[R * D]; Out = new float[R * D];
        Mixes = new float[R * (2 + hc) * hc]; Pre = new float[R * hc]; Post = new float[R * hc]; Comb = new float[R * hc * hc];
        Streams = new float[hc * D];
        QR = new float[R * c.QLoraRank!.Value]; Q = new float[R * c.NumHeads * hd]; O = new float[R * c.NumHeads * hd];
        KV = new float[R * hd]; CompKv = new float[R * 2 * hd]; CompScore = new float[R * 2 * hd];
        IdxKv = new float[R * 2 * ihd]; IdxScore = new float[R * 2 * ihd]; IdxQ = new float[R * ih * ihd]; IdxWeights = new float[R * ih];
        OGroup = new float[R * c.NumHeads * hd / v4.OGroups]; OLow = new float[R * v4.OGroups * v4.OLoraRank]; OLowGroup = new float[R * v4.OLoraRank];
        EntryLast = new int[R]; Counts = new int[R];
        RouterLogits = new float[R * c.NRoutedExperts]; Chosen = new int[R * c.NumExpertsPerTok]; ChosenWeights = new float[R * c.NumExpertsPerTok];
        int Rk = R * Math.Max(1, c.NumExpertsPerTok);
        RouterSelect = new float[c.NRoutedExperts]; ExpertRows = new int[Rk];
        ExpertIn = new float[Rk * D]; ExpertOut = new float[Rk * D]; Gate = new float[Rk * c.MoeIntermediateSize]; Up = new float[Rk * c.MoeIntermediateSize];
        RowScale = new float[Rk];
    }

    /// <summary>Bytes of a pass over <paramref name="rows"/> rows (for `info`'s memory plan).</summary>
    public static long Bytes(ModelConfig c, int rows)
    {
        var v4 = c.V4!;
        long perRow = (long)v4.HcMult * c.HiddenSize + 4L * c.HiddenSize + (2 + v4.HcMult) * v4.HcMult + 2L * v4.HcMult + v4.HcMult * v4.HcMult
            + c.QLoraRank!.Value + 2L * c.NumHeads * c.HeadDim + 5L * c.HeadDim + 5L * c.IndexHeadDim * Math.Max(1, c.IndexNHeads)
            + c.NumHeads * c.HeadDim / v4.OGroups + (v4.OGroups + 1L) * v4.OLoraRank + c.NRoutedExperts + 2L * c.NumExpertsPerTok
            + (long)Math.Max(1, c.NumExpertsPerTok) * (2L * c.HiddenSize + 2L * c.MoeIntermediateSize + 1) + 2;
        return perRow * rows * 4;
    }
}
