using DeepSeekCpu.Kernels;

namespace DeepSeekCpu.Models.DeepSeek;

/// <summary>
/// One sequence of a <see cref="DeepSeekModel"/>: its latent KV cache ([c_kv ; k_pe] per token per layer, in the
/// model's <see cref="DeepSeekModel.CacheType"/> at creation, grown as the sequence does). Forward
/// passes run on the model's <see cref="DeepSeekPass"/> buffers; prompts longer than <see cref="MaxBatch"/> tokens run
/// as several passes.
/// </summary>
internal sealed class DeepSeekSession : ModelSession
{
    /// <summary>
    /// Rows per forward pass (bounds the pass buffers). 512, as llama.cpp's default micro-batch: a prompt chunk's routed
    /// experts get about 512·k/E tokens each (48 for V2-Lite), and every expert's weight tiles are unpacked once per
    /// chunk, so at 256 rows the unpacking per token and the padding to whole micro-kernel steps doubled.
    /// </summary>
    public const int MaxBatch = 512;

    private readonly DeepSeekModel _m;
    internal readonly KvCache[] Cache;            // per layer [ctx, kvl + rope] = [c_kv (normalised) ; k_pe (rotated)]
    internal readonly KvCache[]? IndexCache;      // V3.2: per layer [ctx, index_head_dim] the indexer's keys; else null
    internal override object Owner => _m;

    /// <param name="layers">Cache layers (0: the main layers; the MTP module's sessions index its layer after them,
    /// and caches allocate only when written).</param>
    internal DeepSeekSession(DeepSeekModel m, int contextLength, KvCacheType type, int layers = 0) : base(contextLength)
    {
        var c = m.Config;
        _m = m;
        if (layers == 0) layers = c.NumLayers;
        Cache = new KvCache[layers];
        for (int l = 0; l < layers; l++) Cache[l] = new KvCache(type, c.KvLoraRank + c.QkRopeHeadDim, contextLength);
        if (c.HasIndexer)
        {
            IndexCache = new KvCache[layers];
            for (int l = 0; l < layers; l++) IndexCache[l] = new KvCache(type, c.IndexHeadDim, contextLength);
        }
    }

    /// <summary>Bytes of cache allocated so far (all layers, the indexer's keys included).</summary>
    public long CacheBytes => Cache.Sum(k => k.AllocatedBytes) + (IndexCache?.Sum(k => k.AllocatedBytes) ?? 0);

    public override void Forward(ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions = false) =>
        _m.Contract.Forward(this, tokens, logits, allPositions);
}

/// <summary>
/// The activations of one DeepSeek forward pass over up to <see cref="Rows"/> rows (R), one set per model. Arrays are
/// pinned: batched products take their addresses (<see cref="ExpertBatch"/>).
/// </summary>
internal sealed class DeepSeekPass
{
    public readonly int Rows;
    public readonly float[] X;                  // [R, dim] residual stream
    public readonly float[] Normed, Out;        // [R, dim] a block's normed input, a half's output
    public readonly float[] Q;                  // [R, heads, nope+rope]
    public readonly float[] QA;                 // [R, q_lora]
    public readonly float[] KV;                 // [R, kvl+rope]
    public readonly float[] QLat;               // [R, heads, kvl+rope]  absorbed queries [W_ukᵀ q_nope ; q_pe]
    public readonly float[] OLat;               // [R, heads, kvl]       absorbed output before W_uv
    public readonly float[] O;                  // [R, heads, v]
    public readonly float[] Hidden1, Hidden2;   // [R, max inter] dense MLP, or [R*k, moe inter] routed + [R, shared inter]
    public readonly float[] ExpertOut;          // [R*k + R, dim] routed outputs in expert order, then shared
    public readonly float[] RouterLogits;       // [R, n_experts]
    public readonly float[] RouterSelect;       // [n_experts]
    public readonly float[] GroupScratch;       // [2 * n_group]
    public readonly int[] Chosen;               // [R, k] expert ids
    public readonly float[] ChosenWeights;      // [R, k]
    public readonly int[] Order;                // [R*k] (token*k + slot) grouped by expert
    public readonly int[] ExpertTokens;         // [R*k] the token of each pair of Order (pinned: ExpertBatch rows)
    public readonly int[] ExpertFirst;          // [n_experts + 1] first index in Order of each expert
    public readonly int[] ExpertFill;           // [n_experts]
    public readonly float[] IndexQ;             // [R, index_heads, index_head_dim]  V3.2 indexer queries
    public readonly float[] IndexK;             // [R, index_head_dim]               V3.2 indexer keys
    public readonly float[] IndexWeights;       // [R, index_heads]                  V3.2 per-head weights
    public readonly int[] TopkIndices;          // [R, index_topk] positions each row attends to (ascending)
    public readonly int[] TopkCounts;           // [R]             how many of them
    public readonly int TopkStride;             // index_topk
    public readonly ExpertBatch Batch = new();  // products of one input run together (quantized once, one dispatch)
    public readonly ExpertBatch Experts = new(); // SwiGLU hidden rows of the MLPs of one feed-forward
    private float[]? _naiveLatent;              // [tokens, kvl]            naive attention only, grows
    private float[]? _naiveRows;                // [tokens, kvl+rope]       naive attention only, grows
    private float[]? _naiveExpanded;            // [heads, tokens, nope+rope] keys, [heads, tokens, v] values  naive attention only, grows
    private float[]? _naiveSlice;               // [512 tokens, heads, nope+v] one expansion product  naive attention only

    public DeepSeekPass(ModelConfig c, int rows)
    {
        int R = Rows = rows, dim = c.HiddenSize, H = c.NumHeads, kvl = c.KvLoraRank, rope = c.QkRopeHeadDim;
        int k = Math.Max(1, c.NumExpertsPerTok), E = Math.Max(1, c.NRoutedExperts);
        long hidden = Math.Max(c.IntermediateSize, (long)k * c.MoeIntermediateSize + c.NSharedExperts * c.MoeIntermediateSize);
        X = F(R * dim); Normed = F(R * dim); Out = F(R * dim);
        Q = F(R * H * (c.QkNopeHeadDim + rope)); QA = F(R * (c.QLoraRank ?? 0)); KV = F(R * (kvl + rope));
        QLat = F(R * H * (kvl + rope)); OLat = F(R * H * kvl); O = F(R * H * c.VHeadDim);
        Hidden1 = F(R * hidden); Hidden2 = F(R * hidden);
        ExpertOut = F(R * (k + 1) * dim);
        RouterLogits = F(R * E); RouterSelect = F(E); GroupScratch = F(2 * Math.Max(1, c.NGroup));
        Chosen = new int[R * k]; ChosenWeights = F(R * k); Order = new int[R * k];
        ExpertTokens = GC.AllocateArray<int>(R * k, pinned: true);
        ExpertFirst = new int[E + 1]; ExpertFill = new int[E];
        TopkStride = c.IndexTopk;
        IndexQ = F(R * c.IndexNHeads * c.IndexHeadDim); IndexK = F(R * c.IndexHeadDim); IndexWeights = F(R * c.IndexNHeads);
        TopkIndices = new int[R * c.IndexTopk]; TopkCounts = new int[R];
    }

    private static float[] F(long length) => GC.AllocateArray<float>(checked((int)length), pinned: true);

    /// <summary>Bytes of the buffers above for <paramref name="rows"/> rows (the memory plan of `info`).</summary>
    public static long Bytes(ModelConfig c, int rows)
    {
        long R = rows, dim = c.HiddenSize, H = c.NumHeads, kvl = c.KvLoraRank, rope = c.QkRopeHeadDim;
        long k = Math.Max(1, c.NumExpertsPerTok), E = Math.Max(1, c.NRoutedExperts);
        long hidden = Math.Max(c.IntermediateSize, k * c.MoeIntermediateSize + c.NSharedExperts * c.MoeIntermediateSize);
        long floats = 3 * R * dim + R * H * (c.QkNopeHeadDim + rope) + R * (c.QLoraRank ?? 0) + R * (kvl + rope)
            + R * H * (kvl + rope) + R * H * kvl + R * H * c.VHeadDim + 2 * R * hidden + R * (k + 1) * dim
            + R * E + E + 2 * Math.Max(1, c.NGroup) + R * k
            + R * c.IndexNHeads * c.IndexHeadDim + R * c.IndexHeadDim + R * c.IndexNHeads;
        long ints = 3 * R * k + 2 * E + 1 + R * c.IndexTopk + R;
        return 4 * (floats + ints);
    }

    public float[] NaiveLatent(int length) => Grow(ref _naiveLatent, length);

    public float[] NaiveRows(int length) => Grow(ref _naiveRows, length);

    public float[] NaiveExpanded(int length) => Grow(ref _naiveExpanded, length);

    public float[] NaiveSlice(int length) => Grow(ref _naiveSlice, length);

    /// <summary>
    /// Drops the naive path's expanded keys and values when they outgrew 64 MiB (a long prompt's: 335 MB for V2-Lite
    /// at 16K tokens), so they are not held after a prompt. Called on passes that do not expand (decoding steps), so the
    /// chunks of one long prompt share one buffer: dropped after every chunk, each chunk allocated and the kernel
    /// cleared hundreds of megabytes again (on this project's VM a fresh page costs far more than the copy into it).
    /// </summary>
    public void TrimNaive()
    {
        if ((long)(_naiveExpanded?.Length ?? 0) * sizeof(float) > 64L << 20) _naiveExpanded = null;
    }

    private static float[] Grow(ref float[]? a, int length) =>
        a is { } b && b.Length >= length ? b : (a = new float[Math.Max(length, (a?.Length ?? 0) * 2)]);
}

/// <summary>A block's feed-forward half: a dense MLP or a mixture of experts. y[n, dim] = FFN(x[n, dim]).</summary>
internal interface IFeedForward
{
    void Forward(DeepSeekPass p, ReadOnlySpan<float> x, Span<float> y, int n);
}
