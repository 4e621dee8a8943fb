using System.Numerics.Tensors;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.Llama;

/// <summary>
/// The Llama / Qwen2 / Qwen3 decoder (the R1 distills, R1-0528-Qwen3-8B and the llama2.c demo model): pre-norm blocks
/// of grouped-query attention with RoPE and a SwiGLU MLP. Qwen2 adds biases to q/k/v; Qwen3 instead RMS-normalises each
/// head of q and k before the rope (q_norm / k_norm, HF modeling_qwen3.py). Weights are read by Hugging Face name.
/// </summary>
internal sealed class LlamaModel : ILanguageModel, IForwardPass<LlamaSession>
{
    /// <summary>Rows per forward pass (bounds the pass buffers; the front ends feed prompts in chunks of this size).</summary>
    internal const int MaxBatch = 512;

    public ModelConfig Config { get; }
    public ModelWeights Weights { get; }

    /// <summary>Sees the hidden state after every block (null: nothing is called).</summary>
    public ILayerObserver? LayerObserver { get; set; }

    private readonly WeightMatrix _embedding;     // [vocab, hidden]
    private readonly LlamaBlock[] _layers;
    private readonly float[] _norm;               // [hidden]
    private readonly WeightMatrix _output;        // [vocab, hidden]
    private readonly string _headName;
    private readonly RopeTables _rope;            // cos/sin per position, grown to the longest session's context
    private LlamaPass? _pass;
    internal readonly BatchContract<LlamaSession> Contract;

    public LlamaModel(ModelConfig c, ModelWeights w)
    {
        Config = c; Weights = w;
        if (c.NumHeads % c.NumKvHeads != 0)
            throw new ModelFormatException($"{w.Source}: num_attention_heads {c.NumHeads} is not a multiple of num_key_value_heads {c.NumKvHeads}");
        var emb = w.Get("model.embed_tokens.weight");
        if (emb.Rank != 2 || emb.Shape[0] != c.VocabSize || emb.Shape[1] != c.HiddenSize)
            throw new ModelFormatException($"{emb.File}: tensor model.embed_tokens.weight has shape {emb.ShapeText}, expected [{c.VocabSize}, {c.HiddenSize}]");
        _embedding = w.RawMatrix("model.embed_tokens.weight", c.VocabSize, c.HiddenSize); // looked up row by row
        _layers = new LlamaBlock[c.NumLayers];
        for (int i = 0; i < c.NumLayers; i++) _layers[i] = new LlamaBlock(w, c, i);
        _norm = w.Vector("model.norm.weight", c.HiddenSize);
        _headName = c.TieWordEmbeddings || !w.Contains("lm_head.weight") ? "model.embed_tokens.weight" : "lm_head.weight";
        _output = w.Matrix(_headName, c.VocabSize, c.HiddenSize);
        _rope = new RopeTables(c, c.HeadDim);
        Contract = new BatchContract<LlamaSession>(c, MaxBatch, this);
    }

    public long WeightBytesPerToken => Weights.BytesPerToken(_headName);

    /// <summary>How new sessions store keys and values (LoadOptions.CacheType at load; sessions keep theirs).</summary>
    public KvCacheType CacheType { get; set; } = KvCacheType.F16;

    public long KvBytesPerToken => 2L * Config.NumLayers * KvCache.RowBytesOf(CacheType, Config.NumKvHeads * Config.HeadDim);

    /// <summary>Bytes of scratch a model holds at most: the forward pass buffers (rows of a full prompt chunk).</summary>
    public long ScratchBytes => LlamaPass.Bytes(Config, MaxBatch);

    /// <summary>A new sequence of up to <paramref name="contextLength"/> tokens (at most max_position_embeddings).</summary>
    public IModelSession NewSession(int contextLength) => new LlamaSession(this, _rope.Reserve(contextLength), CacheType);

    /// <summary>
    /// One decoding step for several sequences at once: the weights are read once for all rows, so n sequences cost
    /// about what one does while decoding is memory-bound.
    /// </summary>
    public void DecodeBatch(IReadOnlyList<IModelSession> sessions, ReadOnlySpan<int> tokens, Span<float> logits) =>
        Contract.DecodeBatch(sessions, tokens, logits);

    /// <summary>Embed, the blocks, the final norm and the output head (for the rows asked for).</summary>
    void IForwardPass<LlamaSession>.Run(BatchRows<LlamaSession> rows, ReadOnlySpan<int> tokens, Span<float> logits, int firstLogitRow)
    {
        int n = rows.Count, dim = Config.HiddenSize;
        var p = _pass is { } b && b.Rows >= n ? b : (_pass = new LlamaPass(Config, Math.Min(MaxBatch, Math.Max(n, 2 * (_pass?.Rows ?? 0)))));
        var x = p.X.AsSpan(0, n * dim);                              // [n, dim]
        Ops.EmbedRows(_embedding, tokens[..n], x);
        var rope = _rope.Current;
        for (int l = 0; l < _layers.Length; l++)
        {
            _layers[l].Forward(p, rows, l, rope, x);
            LayerObserver?.AfterBlock(l, x, n);
        }
        Ops.NormThenHead(x[(firstLogitRow * dim)..], _norm, Config.RmsNormEps, _output, p.Xb, logits);
    }

    public void Dispose() => Weights.Dispose();
}

/// <summary>One pre-norm block: x += Wo · attn(RMSNorm(x)); x += Down · (silu(Gate · h) * (Up · h)), h = RMSNorm(x).</summary>
internal sealed class LlamaBlock
{
    private readonly float[] _attnNorm, _mlpNorm;                     // [hidden]
    private readonly WeightMatrix _wq, _wk, _wv, _wo;                 // [heads*hd, hidden], [kv*hd, hidden] x2, [hidden, heads*hd]
    private readonly float[]? _bq, _bk, _bv;                          // Qwen2 biases
    private readonly float[]? _qNorm, _kNorm;                         // [hd] Qwen3 per-head RMSNorm weights
    private readonly WeightMatrix _gate, _up, _down;                  // [ffn, hidden] x2, [hidden, ffn]
    private readonly int _dim, _heads, _kvHeads, _hd, _ffn;
    private readonly float _eps;
    private readonly bool _interleaved;

    public LlamaBlock(ModelWeights w, ModelConfig c, int layer)
    {
        _dim = c.HiddenSize; _heads = c.NumHeads; _kvHeads = c.NumKvHeads; _hd = c.HeadDim; _ffn = c.IntermediateSize;
        _eps = c.RmsNormEps; _interleaved = c.RopeInterleaved;
        int q = _heads * _hd, kv = _kvHeads * _hd;
        string p = $"model.layers.{layer}.";
        _attnNorm = w.Vector(p + "input_layernorm.weight", _dim);
        _mlpNorm = w.Vector(p + "post_attention_layernorm.weight", _dim);
        _wq = w.Matrix(p + "self_attn.q_proj.weight", q, _dim);
        _wk = w.Matrix(p + "self_attn.k_proj.weight", kv, _dim);
        _wv = w.Matrix(p + "self_attn.v_proj.weight", kv, _dim);
        _wo = w.Matrix(p + "self_attn.o_proj.weight", _dim, q);
        if (c.AttentionBias)
        {
            _bq = w.Vector(p + "self_attn.q_proj.bias", q);
            _bk = w.Vector(p + "self_attn.k_proj.bias", kv);
            _bv = w.Vector(p + "self_attn.v_proj.bias", kv);
        }
        if (c.QkNorm)
        {
            _qNorm = w.Vector(p + "self_attn.q_norm.weight", _hd);
            _kNorm = w.Vector(p + "self_attn.k_norm.weight", _hd);
        }
        _gate = w.Matrix(p + "mlp.gate_proj.weight", _ffn, _dim);
        _up = w.Matrix(p + "mlp.up_proj.weight", _ffn, _dim);
        _down = w.Matrix(p + "mlp.down_proj.weight", _dim, _ffn);
    }

    /// <summary>x[n, dim] through the block, each row at its own position, appending k and v to its session's cache.</summary>
    public void Forward(LlamaPass p, BatchRows<LlamaSession> rows, int layer, RopeTable rope, Span<float> x)
    {
        int n = rows.Count, qDim = _heads * _hd, kvDim = _kvHeads * _hd;
        var h = p.Xb.AsSpan(0, n * _dim);                            // [n, dim]
        var o = p.O.AsSpan(0, n * _dim);                             // [n, dim]
        var q = p.Q.AsSpan(0, n * qDim);                             // [n, heads, hd]
        var k = p.K.AsSpan(0, n * kvDim);                            // [n, kv heads, hd]
        var v = p.V.AsSpan(0, n * kvDim);                            // [n, kv heads, hd]

        // --- attention: x += Wo · attn(RMSNorm(x)) ---
        Ops.RmsNormRows(x, _attnNorm, h, n, _dim, _eps);
        var b = p.Products;                                          // h quantized once for the three, one dispatch
        b.Clear();
        b.Add(_wq, h, n, q);
        b.Add(_wk, h, n, k);
        b.Add(_wv, h, n, v);
        ExpertGemm.Run(b);
        for (int t = 0; t < n; t++)
        {
            var qt = q.Slice(t * qDim, qDim); var kt = k.Slice(t * kvDim, kvDim); var vt = v.Slice(t * kvDim, kvDim);
            if (_bq != null) { TensorPrimitives.Add(qt, _bq, qt); TensorPrimitives.Add(kt, _bk!, kt); TensorPrimitives.Add(vt, _bv!, vt); }
            if (_qNorm != null)
            {
                Ops.RmsNormRows(qt, _qNorm, qt, _heads, _hd, _eps);    // each head of q: [heads, hd]
                Ops.RmsNormRows(kt, _kNorm!, kt, _kvHeads, _hd, _eps); // each head of k: [kv heads, hd]
            }
            int pos = rows.Positions[t];
            var cos = rope.Cos(pos); var sin = rope.Sin(pos);
            for (int i = 0; i < _heads; i++) Ops.Rope(qt.Slice(i * _hd, _hd), cos, sin, _interleaved);
            for (int i = 0; i < _kvHeads; i++) Ops.Rope(kt.Slice(i * _hd, _hd), cos, sin, _interleaved);
            rows.Sessions[t].KCache[layer].Write(pos, kt);
            rows.Sessions[t].VCache[layer].Write(pos, vt);
        }
        var keys = rows.Caches(layer, static (s, l) => s.KCache[l], 0);     // per row [ctx, kv heads, hd]
        var values = rows.Caches(layer, static (s, l) => s.VCache[l], 1);
        Attention.Causal(p.Q, p.Att, n, _heads, _kvHeads, _hd, _hd, keys, values, rows.Positions, rope.AttentionScaleFactor / MathF.Sqrt(_hd));
        MatMul.Multiply(_wo, p.Att.AsSpan(0, n * qDim), o, n);
        TensorPrimitives.Add(x, o, x);

        // --- MLP: x += Down · (silu(Gate · h) * (Up · h)), h = RMSNorm(x) ---
        var g = p.G.AsSpan(0, n * _ffn);                             // [n, ffn]
        var u = p.U.AsSpan(0, n * _ffn);                             // [n, ffn]
        Ops.RmsNormRows(x, _mlpNorm, h, n, _dim, _eps);
        b.Clear();
        b.Add(_gate, _up, h, [], n, g, u);                           // g = silu(Gate · h) * (Up · h), fused where a GEMM runs
        ExpertGemm.Run(b);
        MatMul.Multiply(_down, g, o, n);
        TensorPrimitives.Add(x, o, x);
    }
}
