using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.DeepSeek.V4;

/// <summary>
/// DeepSeek-V4 (<c>DeepseekV4ForCausalLM</c>; DeepSeek-V4-Flash inference/model.py class Transformer, whose names and
/// order this graph follows): embed → hc_mult copies of the hidden state → blocks (<see cref="Block"/>: hyper-connected
/// <see cref="Attention"/> with sliding window, compressed entries and sinks, and <see cref="MoE"/> with hash or
/// sqrtsoftplus routing) → hc_head (a sigmoid-weighted sum of the streams) → norm → head. Tensor names as released
/// (<c>layers.N.attn.*</c>, <c>layers.N.ffn.*</c>, <c>embed</c>, <c>head</c>, no <c>model.</c> prefix). Computed in
/// float32 like the reference run of tests/fixtures/deepseek-v4-tiny (DeepSeek's fp8/fp4 activation rounding is a
/// training-time simulation the fixture turns off). Multi-token-prediction layers (<c>mtp.*</c>) are not loaded.
/// </summary>
internal sealed class DeepSeekV4Model : ILanguageModel, IForwardPass<V4Session>
{
    public ModelConfig Config { get; }
    public ModelWeights Weights { get; }

    /// <summary>Sees the hyper-connection streams [rows, hc · dim] after every block (null: nothing is called).</summary>
    public ILayerObserver? LayerObserver { get; set; }

    /// <summary>
    /// Sees, after every CSA layer (compress_ratio 4), the compressed entries each row attended to (the indexer's
    /// top-k, ascending); null: nothing is called.
    /// </summary>
    public SelectionObserver? SelectionObserver { get; set; }

    /// <summary>How new sessions store their caches (LoadOptions.CacheType at load).</summary>
    public KvCacheType CacheType { get; set; } = KvCacheType.F16;

    private readonly WeightMatrix _embed;            // [vocab, dim]
    private readonly WeightMatrix _head;             // [vocab, dim]
    private readonly float[] _norm;                  // [dim]
    private readonly HcMix _hcHead;
    private readonly Block[] _layers;
    private readonly V4Rope _windowRope, _compressRope;
    private readonly long _expertBytes;
    private V4Pass? _pass;
    internal readonly BatchContract<V4Session> Contract;

    public DeepSeekV4Model(ModelWeights weights, ModelConfig config)
    {
        var c = config;
        var v4 = c.V4 ?? throw new ModelFormatException($"{weights.Source}: model_type {c.ModelType} is not DeepSeek-V4");
        Config = c; Weights = weights;
        string src = weights.Source;
        if (c.QLoraRank is not > 0) throw new ModelFormatException($"{src}: DeepSeek-V4 needs q_lora_rank > 0");
        if (c.QkRopeHeadDim <= 0 || c.QkRopeHeadDim % 2 != 0 || c.QkRopeHeadDim > c.HeadDim)
            throw new ModelFormatException($"{src}: qk_rope_head_dim {c.QkRopeHeadDim} must be even and at most head_dim {c.HeadDim}");
        if (v4.OGroups < 1 || c.NumHeads % v4.OGroups != 0) throw new ModelFormatException($"{src}: o_groups {v4.OGroups} must divide num_attention_heads {c.NumHeads}");
        if (v4.HcMult < 1 || v4.HcSinkhornIters < 1 || v4.SlidingWindow < 1 || v4.OLoraRank < 1)
            throw new ModelFormatException($"{src}: hc_mult, hc_sinkhorn_iters, sliding_window and o_lora_rank must be ≥ 1");
        if (v4.CompressRatios.Take(c.NumLayers).Any(r => r == 4) && (c.IndexTopk < 1 || c.IndexNHeads < 1 || c.IndexHeadDim < c.QkRopeHeadDim))
            throw new ModelFormatException($"{src}: compress_ratio 4 layers need index_topk, index_n_heads ≥ 1 and index_head_dim ≥ qk_rope_head_dim");
        if (c.NumExpertsPerTok < 1 || c.NumExpertsPerTok > c.NRoutedExperts)
            throw new ModelFormatException($"{src}: num_experts_per_tok {c.NumExpertsPerTok} must lie in 1..n_routed_experts ({c.NRoutedExperts})");

        int positions = Math.Clamp(c.MaxPositionEmbeddings, 1, 4096);
        // window-only layers: rope_theta without YaRN; compressed layers: compress_rope_theta with YaRN (Attention.__init__)
        _windowRope = new V4Rope(c.QkRopeHeadDim, c.RopeTheta, null, positions);
        _compressRope = new V4Rope(c.QkRopeHeadDim, v4.CompressRopeTheta, c.RopeScaling is { Type: "yarn" } y ? y : null, positions);
        _embed = weights.RawMatrix("embed.weight", c.VocabSize, c.HiddenSize);   // looked up by row
        _head = weights.Matrix("head.weight", c.VocabSize, c.HiddenSize);
        _norm = weights.Vector("norm.weight", c.HiddenSize);
        _hcHead = new HcMix(weights, c, "hc_head_", head: true);
        _layers = new Block[c.NumLayers];
        for (int l = 0; l < c.NumLayers; l++)
            _layers[l] = new Block(weights, c, l, v4.CompressRatios[l] > 0 ? _compressRope : _windowRope);
        _expertBytes = _layers.Sum(b => b.ExpertBytes);
        Contract = new BatchContract<V4Session>(c, V4Session.MaxBatch, this);
    }

    /// <summary>Every matrix a token multiplies by, with num_experts_per_tok of the n_routed_experts routed experts.</summary>
    public long WeightBytesPerToken =>
        Weights.BytesPerToken("head.weight") - (long)(_expertBytes * (1 - Config.NumExpertsPerTok / (double)Config.NRoutedExperts));

    /// <summary>Bytes of every routed expert's matrices in memory.</summary>
    internal long ExpertBytes => _expertBytes;

    /// <summary>
    /// What `info` prints about the routed experts: per format, how many matrices, their bits per weight and how they
    /// are computed, and the bytes they hold in memory (FP4 experts: an MXFP4 copy made at load, 4.25 bits per weight).
    /// </summary>
    public string ExpertDescription
    {
        get
        {
            var groups = _layers.SelectMany(b => b.ExpertMatrices).GroupBy(m => (m.Type, m.Activations))
                .Select(g => string.Format(System.Globalization.CultureInfo.InvariantCulture, "{0} x {1} ({2:F2} bits per weight, {3} activations)",
                    g.Count(), g.Key.Type, 8.0 * g.Key.Type.ByteCount(g.First().Cols) / g.First().Cols,
                    g.Key.Activations == ActivationPrecision.Float32 || !g.Key.Type.IsQuantized() ? "float32" : "8-bit"));
            return $"{string.Join(", ", groups)}; {_expertBytes:N0} bytes resident, {Config.NumExpertsPerTok} of {Config.NRoutedExperts} read per token and layer";
        }
    }

    /// <summary>
    /// Cache bytes per token of context: each compressed layer's entry [head_dim] per compress_ratio tokens and each CSA
    /// layer's index key [index_head_dim] per 4 (the windows are a fixed <see cref="WindowBytes"/> per sequence).
    /// </summary>
    public long KvBytesPerToken
    {
        get
        {
            double bytes = 0;
            foreach (int r in Config.V4!.CompressRatios.Take(Config.NumLayers))
                if (r > 0) bytes += (KvCache.RowBytesOf(CacheType, Config.HeadDim) + (r == 4 ? KvCache.RowBytesOf(CacheType, Config.IndexHeadDim) : 0)) / (double)r;
            return (long)Math.Ceiling(bytes);
        }
    }

    /// <summary>Bytes of the sliding-window rings of one sequence, all layers (independent of its length).</summary>
    public long WindowBytes => (long)Config.NumLayers * (Config.V4!.SlidingWindow + V4Session.MaxBatch) * KvCache.RowBytesOf(CacheType, Config.HeadDim);

    /// <summary>What `info` prints about the caches: per layer kind, what a token costs.</summary>
    public string CacheDescription
    {
        get
        {
            var v4 = Config.V4!;
            var ratios = v4.CompressRatios.Take(Config.NumLayers).ToArray();
            int window = ratios.Count(r => r == 0), csa = ratios.Count(r => r == 4), hca = ratios.Length - window - csa;
            return $"window {v4.SlidingWindow} tokens x {Config.NumLayers} layers ({WindowBytes:N0} bytes per sequence, fixed); " +
                $"compressed entries [{Config.HeadDim}] on {csa} CSA layers (1 per 4 tokens, + index keys [{Config.IndexHeadDim}], top {Config.IndexTopk}) " +
                $"and {hca} HCA layers (1 per {string.Join("/", ratios.Where(r => r > 4).Distinct())} tokens); {window} window-only layers; " +
                $"{KvBytesPerToken:N0} bytes per token ({KvCache.Name(CacheType)})";
        }
    }

    /// <summary>Bytes of scratch a model holds at most: the forward pass buffers.</summary>
    public long ScratchBytes => V4Pass.Bytes(Config, V4Session.MaxBatch);

    public IModelSession NewSession(int contextLength)
    {
        if (contextLength < 1) throw new ArgumentOutOfRangeException(nameof(contextLength), $"context length {contextLength}: a session holds at least one token");
        contextLength = Math.Min(contextLength, Math.Max(1, Config.MaxPositionEmbeddings));
        _windowRope.Reserve(contextLength);
        _compressRope.Reserve(contextLength);
        return new V4Session(this, contextLength, CacheType);
    }

    public void Dispose() => Weights.Dispose();

    /// <summary>One decoding step for several sequences (their projections and experts read once for all rows).</summary>
    public void DecodeBatch(IReadOnlyList<IModelSession> sessions, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        foreach (var s in sessions) (s as V4Session)?.CatchUp();
        Contract.DecodeBatch(sessions, tokens, logits);
    }

    /// <summary>Transformer.forward: embed, hc_mult copies, the blocks, hc_head, norm and head (for the rows asked for).</summary>
    void IForwardPass<V4Session>.Run(BatchRows<V4Session> rows, ReadOnlySpan<int> tokens, Span<float> logits, int firstLogitRow)
    {
        int n = rows.Count, dim = Config.HiddenSize, hc = Config.V4!.HcMult;
        var p = _pass is { } b && b.Rows >= n ? b : (_pass = new V4Pass(Config, Math.Min(V4Session.MaxBatch, Math.Max(n, 2 * (_pass?.Rows ?? 0)))));
        var h = p.H.AsSpan(0, n * hc * dim);                         // [n, hc, dim]
        var x = p.X.AsSpan(0, n * dim);                              // [n, dim]
        Ops.EmbedRows(_embed, tokens[..n], x);
        for (int t = 0; t < n; t++)
        {
            for (int i = 0; i < hc; i++) x.Slice(t * dim, dim).CopyTo(h.Slice((t * hc + i) * dim, dim));
            rows.Sessions[t].Tokens[rows.Positions[t]] = tokens[t];
        }
        for (int l = 0; l < _layers.Length; l++)
        {
            _layers[l].Forward(p, rows, tokens[..n], h);
            LayerObserver?.AfterBlock(l, h, n);
            if (SelectionObserver is { } see && Config.V4.CompressRatios[l] == 4)
                for (int t = 0; t < n; t++) see(l, rows.Positions[t], p.Selected.AsSpan(t * Config.IndexTopk, p.Counts[t]));
        }
        for (int t = 0; t < n; t++) rows.Sessions[t].Valid = rows.Positions[t] + 1;
        int m = n - firstLogitRow;
        if (m == 0) return;
        var y = p.Out.AsSpan(0, m * dim);                            // [m, dim] hc_head(h)
        _hcHead.Pre(p, h[(firstLogitRow * hc * dim)..], y, m);
        Ops.NormThenHead(y, _norm, Config.RmsNormEps, _head, p.X, logits);
    }
}
