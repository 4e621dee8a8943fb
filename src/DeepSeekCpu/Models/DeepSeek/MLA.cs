using DeepSeekCpu.Kernels;

namespace DeepSeekCpu.Models.DeepSeek;

/// <summary>
/// Multi-head Latent Attention (DeepSeek-V2 paper §2.1; deepseek-ai/DeepSeek-V3 inference/model.py class MLA).
/// Queries come from a low-rank projection (q LoRA) or a plain q_proj; keys and values from one latent c_kv per token
/// that all heads share, plus one rope key k_pe shared by all heads. The KV cache holds only [c_kv ; k_pe] per token.
/// Weights, including the absorbed path's per-head matrices, are prepared at load by <see cref="MlaWeights"/>.
/// DeepSeek-V3.2 adds an <see cref="Indexer"/>: each query then attends only to the cached tokens it selects.
/// </summary>
internal sealed class MLA
{
    private readonly MlaWeights W;
    private readonly Indexer? _indexer;    // V3.2 DeepSeek Sparse Attention; null: dense causal attention
    private readonly int _heads, _nope, _rope, _v, _kvl;
    private readonly int _qkHead;          // nope + rope
    private readonly int _row;             // cache row: kvl + rope
    private readonly float _eps, _softmaxScale;
    private readonly bool _interleaved;

    public MLA(MlaWeights w, ModelConfig c, float softmaxScale, bool ropeInterleaved, Indexer? indexer = null)
    {
        W = w; _indexer = indexer;
        _heads = c.NumHeads; _nope = c.QkNopeHeadDim; _rope = c.QkRopeHeadDim; _v = c.VHeadDim; _kvl = c.KvLoraRank;
        _qkHead = _nope + _rope; _row = _kvl + _rope; _eps = c.RmsNormEps;
        _softmaxScale = softmaxScale; _interleaved = ropeInterleaved;
    }

    /// <summary>
    /// y[n, dim] = attention of the rows' tokens x[n, dim], each at its own position over its own sequence's cache of
    /// this layer (to which it appends [c_kv ; k_pe]); <paramref name="expand"/> picks the naive computation.
    /// </summary>
    public void Forward(DeepSeekPass p, BatchRows<DeepSeekSession> rows, int layer, RopeTable rope, bool expand,
        ReadOnlySpan<float> x, Span<float> y)
    {
        int n = rows.Count;
        var q = p.Q.AsSpan(0, n * _heads * _qkHead);                 // [n, heads, nope+rope]
        var kv = p.KV.AsSpan(0, n * _row);                           // [n, kvl+rope] = [c_kv ; k_pe] before norm and rope
        var qa = p.QA.AsSpan(0, n * (W.WqA?.Rows ?? 0));             // [n, q_lora]

        // q = wq(x), or wq_b(q_norm(wq_a(x))); kv = wkv_a(x). Both read x: one batch (x quantized once).
        var b = p.Batch;
        b.Clear();
        if (W.Wq != null) b.Add(W.Wq, x, n, q); else b.Add(W.WqA!, x, n, qa);
        b.Add(W.WkvA, x, n, kv);
        ExpertGemm.Run(b);
        if (W.WqA != null)
        {
            Ops.RmsNormRows(qa, W.QNorm!, qa, n, W.WqA.Rows, _eps);
            MatMul.Multiply(W.WqB!, qa, q, n);
        }

        // RoPE on q_pe (every head) and k_pe; c_kv = kv_norm(c_kv); the row's cache[pos] = [c_kv ; k_pe].
        for (int t = 0; t < n; t++)
        {
            int pos = rows.Positions[t];
            var cos = rope.Cos(pos); var sin = rope.Sin(pos);
            for (int h = 0; h < _heads; h++)
                Ops.Rope(q.Slice((t * _heads + h) * _qkHead + _nope, _rope), cos, sin, _interleaved);
            var row = kv.Slice(t * _row, _row);
            Ops.RmsNorm(row[.._kvl], W.KvNorm, row[.._kvl], _eps);
            Ops.Rope(row[_kvl..], cos, sin, _interleaved);
            rows.Sessions[t].Cache[layer].Write(pos, row);
        }

        if (_indexer != null)
        {
            // V3.2: the indexer picks each row's top-k cached positions; attention over the latent cache sees only
            // those (model.py adds −∞ elsewhere, in its prefill and decode paths alike)
            _indexer.Forward(p, rows, layer, rope, x, qa);
            AttendAbsorbed(p, rows, layer, sparse: true);
        }
        else if (expand) AttendNaive(p, rows, layer);
        else AttendAbsorbed(p, rows, layer, sparse: false);
        MatMul.Multiply(W.Wo, p.O.AsSpan(0, n * _heads * _v), y, n);  // o [n, heads, v] → y [n, dim]
    }

    // Absorbed attention (model.py attn_impl "absorb"). Per head h, with k_nope_t = W_uk_h c_t and v_t = W_uv_h c_t:
    //   q_nope·k_nope_t = q_nopeᵀ W_uk_h c_t = (W_uk_hᵀ q_nope)·c_t = q_lat·c_t          (fold W_uk into the query)
    //   Σ_t p_t v_t = W_uv_h Σ_t p_t c_t = W_uv_h o_lat                                   (fold W_uv after the sum)
    // so keys and values never leave the kvl-dimensional latent space and the cache holds only c_t and k_pe_t.
    // All heads then share one key stream [c_kv ; k_pe] (queries [q_lat ; q_pe]) and one value stream c_kv.
    private void AttendAbsorbed(DeepSeekPass p, BatchRows<DeepSeekSession> rows, int layer, bool sparse)
    {
        int n = rows.Count;
        var q = p.Q.AsSpan(0, n * _heads * _qkHead);                 // [n, heads, nope+rope]
        var qLat = p.QLat.AsSpan(0, n * _heads * _row);              // [n, heads, kvl+rope] = [W_ukᵀ q_nope ; q_pe]
        MatMulHeads.Multiply(W.WukT, q, _qkHead, qLat, _row, n);
        for (int i = 0; i < n * _heads; i++) q.Slice(i * _qkHead + _nope, _rope).CopyTo(qLat.Slice(i * _row + _kvl, _rope));

        var caches = rows.Caches(layer, static (s, l) => s.Cache[l]);  // per row [ctx, kvl+rope]
        if (sparse)                                                  // o_lat [n, heads, kvl] over the selected rows
            SparseAttention.Selected(p.QLat, p.OLat, n, _heads, dk: _row, dv: _kvl, caches,
                p.TopkIndices, p.TopkCounts, stride: p.TopkStride, _softmaxScale);
        else
            Attention.Causal(p.QLat, p.OLat, n, _heads, kvHeads: 1, dk: _row, dv: _kvl,
                keys: caches, values: caches, rows.Positions, _softmaxScale);   // o_lat [n, heads, kvl]
        MatMulHeads.Multiply(W.Wuv, p.OLat.AsSpan(0, n * _heads * _kvl), _kvl, p.O.AsSpan(0, n * _heads * _v), _v, n);
    }

    // Naive attention (model.py attn_impl "naive"): expand every cached latent into per-head keys and values with one
    // product, [k_nope ; v]_h = kv_b c_t, then ordinary attention with k_h = [k_nope_h ; k_pe]. Rows of one sequence.
    private void AttendNaive(DeepSeekPass p, BatchRows<DeepSeekSession> rows, int layer)
    {
        int n = rows.Count, start = rows.Positions[0], total = start + n, dk = _nope + _rope;
        var cache = rows.Sessions[0].Cache[layer];                   // [ctx, kvl+rope] as stored
        var all = p.NaiveRows(total * _row);                         // [total, kvl+rope] as float32
        var c = p.NaiveLatent(total * _kvl);                         // [total, kvl]
        for (int j = 0; j < total; j++)
        {
            cache.Read(j, all.AsSpan(j * _row, _row));
            all.AsSpan(j * _row, _kvl).CopyTo(c.AsSpan(j * _kvl, _kvl));
        }
        // keys [heads, total, nope+rope] then values [heads, total, v] (Attention.ToHeads), expanded a slice of tokens
        // at a time through a [slice, heads, nope+v] product
        var kv = p.NaiveExpanded(total * _heads * (dk + _v));
        int slice = Math.Min(total, ExpandSlice);
        var part = p.NaiveSlice(slice * _heads * (_nope + _v));
        for (int t0 = 0; t0 < total; t0 += slice)
        {
            int m = Math.Min(slice, total - t0);
            MatMul.Multiply(W.WkvB, c.AsSpan(t0 * _kvl, m * _kvl), part.AsSpan(0, m * _heads * (_nope + _v)), m);
            Attention.ToHeads(part, m, t0, total, _heads, _nope, _rope, _v, all, peOffset: _kvl, peStride: _row, kv);
        }
        Attention.Expanded(p.Q, p.O, n, start, _heads, dk, _v, kv, total, _softmaxScale);
    }

    /// <summary>Tokens per expansion product of the naive path (its [slice, heads, nope+v] scratch: 8 MB on V2-Lite, 64 MB
    /// on V3). Settable for tests only: a few tokens make a short prompt take several slices.</summary>
    internal static int ExpandSlice = 512;
}
