using System.Numerics.Tensors;
using System.Text.RegularExpressions;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.DeepSeek;

/// <summary>
/// DeepSeek-V2 / V2-Lite / V3 / R1 / V3.2: a transformer whose blocks pair Multi-head Latent Attention with a dense MLP
/// (the first <c>first_k_dense_replace</c> layers) or DeepSeekMoE (deepseek-ai/DeepSeek-V3 inference/model.py class
/// Transformer). Weights are read by Hugging Face name (GGUF goes through <see cref="DeepSeekGguf"/>); stored formats
/// are kept as they are (FP8 with block scales, BF16, GGUF quants) and multiplied by <see cref="MatMul"/>.
/// The multi-token-prediction module (stored after the main layers) is loaded on first use of <see cref="Mtp"/>. V3.2 (DeepSeek-V3.2-Exp
/// inference/model.py) adds a lightning <see cref="Indexer"/> to every MLA layer: each query attends to the
/// index_topk cached tokens it selects, always over the latent cache (absorbed), whatever <see cref="MlaMode"/> says.
/// </summary>
internal sealed partial class DeepSeekModel : ILanguageModel, IForwardPass<DeepSeekSession>
{
    public ModelConfig Config { get; }
    public ModelWeights Weights { get; }

    /// <summary>How attention is computed, read at every forward pass (Auto: absorbed decoding, naive prefill).</summary>
    public MlaMode MlaMode { get; set; } = MlaMode.Auto;

    /// <summary>Sees the hidden state after every block (null: nothing is called).</summary>
    public ILayerObserver? LayerObserver { get; set; }

    /// <summary>
    /// V3.2: sees, after every block, the positions each row's query attended to (its indexer's selection, ascending);
    /// null: nothing is called. For tests and tools that check the sparse selection.
    /// </summary>
    public SelectionObserver? SelectionObserver { get; set; }

    /// <summary>MTP layers present in the weights (layer index ≥ num_hidden_layers); the first is <see cref="Mtp"/>.</summary>
    public int MtpLayers { get; }

    /// <summary>
    /// RoPE rotates interleaved pairs (2i, 2i+1), as DeepSeek's reference does on its weights (config.RopeInterleaved).
    /// True for HF and GGUF DeepSeek weights: HF's modeling_deepseek.py de-interleaves q_pe/k_pe at run time before
    /// rotate_half, which is the same computation; llama.cpp's deepseek2 uses LLAMA_ROPE_TYPE_NORM (adjacent pairs) on
    /// unpermuted weights. The fixture's reference logits confirm it.
    /// </summary>
    public bool RopeInterleaved { get; }

    private readonly WeightMatrix _embed;   // [vocab, dim]
    private readonly WeightMatrix _head;    // [vocab, dim]
    private readonly float[] _norm;         // [dim]
    private readonly Block[] _layers;
    private readonly RopeTables _rope;      // cos/sin of the rope dims, grown to the longest session
    private DeepSeekPass? _pass;
    private readonly float _softmaxScale;
    internal readonly BatchContract<DeepSeekSession> Contract;

    /// <summary>Attention, dense and shared MLPs, the router, the head, and num_experts_per_tok routed experts per MoE layer.</summary>
    public long WeightBytesPerToken => AllBytesPerToken - _mtpOwnBytes;   // the MTP module's, once loaded, apart

    /// <summary>How new sessions store the latent cache (LoadOptions.CacheType at load; sessions keep theirs).</summary>
    public KvCacheType CacheType { get; set; } = KvCacheType.F16;

    /// <summary>Cache bytes per token: the latent row of every layer, plus V3.2's index key.</summary>
    public long KvBytesPerToken => (long)Config.NumLayers * (KvCache.RowBytesOf(CacheType, Config.KvLoraRank + Config.QkRopeHeadDim)
        + (Config.HasIndexer ? KvCache.RowBytesOf(CacheType, Config.IndexHeadDim) : 0));

    /// <summary>Builds the graph over <paramref name="weights"/> (HF names) with <paramref name="config"/>.</summary>
    /// <param name="ropeInterleaved">Override the rope layout (null: the config's, interleaved for DeepSeek).</param>
    public DeepSeekModel(ModelWeights weights, ModelConfig config, bool? ropeInterleaved = null)
    {
        var c = config;
        if (!c.IsMla) throw new ModelFormatException($"{weights.Source}: model_type {c.ModelType} is not a DeepSeek MLA model");
        if (c.KvLoraRank <= 0 || c.QkRopeHeadDim <= 0 || c.QkNopeHeadDim <= 0 || c.VHeadDim <= 0 || c.QkRopeHeadDim % 2 != 0)
            throw new ModelFormatException($"{weights.Source}: MLA needs kv_lora_rank, qk_nope_head_dim, v_head_dim > 0 and an even qk_rope_head_dim");
        Config = c; Weights = weights;
        RopeInterleaved = ropeInterleaved ?? c.RopeInterleaved;
        _rope = new RopeTables(c, c.QkRopeHeadDim);
        // softmax_scale = (nope + rope)^-0.5, times mscale² under YaRN (model.py MLA.__init__)
        float softmaxScale = _softmaxScale = (float)(1.0 / Math.Sqrt(c.QkNopeHeadDim + c.QkRopeHeadDim)) * _rope.Current.AttentionScaleFactor;
        _embed = weights.RawMatrix("model.embed_tokens.weight", c.VocabSize, c.HiddenSize); // looked up by row
        _head = weights.Matrix(c.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight", c.VocabSize, c.HiddenSize);
        _norm = weights.Vector("model.norm.weight", c.HiddenSize);
        _layers = new Block[c.NumLayers];
        for (int i = 0; i < c.NumLayers; i++) _layers[i] = new Block(weights, c, i, softmaxScale, RopeInterleaved);
        Contract = new BatchContract<DeepSeekSession>(c, DeepSeekSession.MaxBatch, this);

        var layerName = new Regex(@"^model\.layers\.(\d+)\.");
        MtpLayers = weights.Tensors.Keys.Select(name => layerName.Match(name))
            .Where(m => m.Success && int.Parse(m.Groups[1].Value) >= c.NumLayers).Select(m => m.Groups[1].Value).Distinct().Count();
    }

    /// <summary>Bytes of scratch a model holds at most: the forward pass buffers (rows of a full prompt chunk).</summary>
    public long ScratchBytes => DeepSeekPass.Bytes(Config, DeepSeekSession.MaxBatch);

    /// <summary>A new sequence of up to <paramref name="contextLength"/> tokens (at most max_position_embeddings).</summary>
    public IModelSession NewSession(int contextLength) =>
        new DeepSeekSession(this, _rope.Reserve(contextLength), CacheType);

    public void Dispose() => Weights.Dispose();

    /// <summary>
    /// One decoding step for several sequences at once (continuous batching): attention projections, the shared
    /// experts and the head read their weights once for all rows; the routed experts once per expert over the rows that
    /// chose it; attention runs absorbed over each row's own latent cache.
    /// </summary>
    public void DecodeBatch(IReadOnlyList<IModelSession> sessions, ReadOnlySpan<int> tokens, Span<float> logits) =>
        Contract.DecodeBatch(sessions, tokens, logits);

    /// <summary>model.py Transformer.forward: embed, the blocks, the final norm and the head (for the rows asked for).</summary>
    void IForwardPass<DeepSeekSession>.Run(BatchRows<DeepSeekSession> rows, ReadOnlySpan<int> tokens, Span<float> logits, int firstLogitRow)
    {
        int n = rows.Count, dim = Config.HiddenSize;
        var p = _pass is { } b && b.Rows >= n ? b : (_pass = new DeepSeekPass(Config, Math.Min(DeepSeekSession.MaxBatch, Math.Max(n, 2 * (_pass?.Rows ?? 0)))));
        var x = p.X.AsSpan(0, n * dim);                              // [n, dim]
        Ops.EmbedRows(_embed, tokens[..n], x);
        var rope = _rope.Current;
        bool expand = MlaPlan.Expands(MlaMode, rows, Config);
        for (int l = 0; l < _layers.Length; l++)
        {
            _layers[l].Forward(p, rows, rope, expand, x);
            LayerObserver?.AfterBlock(l, x, n);
            if (SelectionObserver is { } see && Config.HasIndexer)
                for (int t = 0; t < n; t++) see(l, rows.Positions[t], p.TopkIndices.AsSpan(t * p.TopkStride, p.TopkCounts[t]));
        }
        if (!expand) p.TrimNaive();   // after a long prompt, at its first decoding step: its chunks share the buffer
        _mtp?.Capture(rows, x);   // the MTP module, once loaded, keeps every row's last hidden state
        Ops.NormThenHead(x[(firstLogitRow * dim)..], _norm, Config.RmsNormEps, _head, p.Normed, logits);
    }
}

/// <summary>The cached positions the query at <paramref name="position"/> attended to in layer <paramref name="layer"/>.</summary>
internal delegate void SelectionObserver(int layer, int position, ReadOnlySpan<int> selected);

/// <summary>One transformer block (model.py class Block): attention and feed-forward, each behind an RMSNorm and a residual.</summary>
internal sealed class Block
{
    private readonly float[] _attnNorm, _ffnNorm; // [dim] input_layernorm, post_attention_layernorm
    private readonly MLA _attn;
    private readonly IFeedForward _ffn;
    private readonly int _layer, _dim;
    private readonly float _eps;

    public Block(ModelWeights w, ModelConfig c, int layer, float softmaxScale, bool ropeInterleaved)
    {
        _layer = layer; _dim = c.HiddenSize; _eps = c.RmsNormEps;
        string p = $"model.layers.{layer}.";
        _attnNorm = w.Vector(p + "input_layernorm.weight", _dim);
        _ffnNorm = w.Vector(p + "post_attention_layernorm.weight", _dim);
        _attn = new MLA(new MlaWeights(w, c, p + "self_attn."), c, softmaxScale, ropeInterleaved,
            c.HasIndexer ? new Indexer(w, c, p + "self_attn.indexer.") : null);
        _ffn = c.IsMoeLayer(layer) ? new MoE(w, c, p + "mlp.") : new MLP(w, p + "mlp.", _dim, c.IntermediateSize);
    }

    /// <summary>x[n, dim] += attn(attn_norm(x)); x += ffn(ffn_norm(x)), each row at its own position.</summary>
    public void Forward(DeepSeekPass p, BatchRows<DeepSeekSession> rows, RopeTable rope, bool expand, Span<float> x)
    {
        int n = rows.Count;
        var h = p.Normed.AsSpan(0, n * _dim);                        // [n, dim]
        var o = p.Out.AsSpan(0, n * _dim);                           // [n, dim]
        Ops.RmsNormRows(x, _attnNorm, h, n, _dim, _eps);
        _attn.Forward(p, rows, _layer, rope, expand, h, o);
        TensorPrimitives.Add(x, o, x);
        Ops.RmsNormRows(x, _ffnNorm, h, n, _dim, _eps);
        _ffn.Forward(p, h, o, n);
        TensorPrimitives.Add(x, o, x);
    }
}
