using System.Numerics.Tensors;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.DeepSeek.V4;

/// <summary>
/// DeepSeek-V4's attention (DeepSeek-V4-Flash inference/model.py class Attention): multi-query attention whose one
/// kv head [head_dim] is both key and value ("one latent KV shared as K and V"), over
/// - the sliding window of the last sliding_window tokens (every layer), and
/// - compress_ratio 4 (CSA): compressed entries (4 tokens → 1, overlapping blocks) chosen by a lightning
///   <see cref="Indexer"/> (top index_topk), or compress_ratio &gt; 4 (HCA): every compressed entry;
/// with a learned sink logit per head in the softmax. RoPE covers the last qk_rope_head_dim dims of q and kv
/// (interleaved pairs), and the inverse rotation is applied to the output, so values carry no absolute position.
/// The output projection is grouped low-rank: wo_a maps each of o_groups slices of the heads to o_lora_rank values,
/// wo_b all of them to the hidden size.
/// </summary>
internal sealed class Attention
{
    private readonly WeightMatrix _wqA;              // [q_lora, dim]
    private readonly float[] _qNorm;                 // [q_lora]
    private readonly WeightMatrix _wqB;              // [heads · head_dim, q_lora]
    private readonly WeightMatrix _wkv;              // [head_dim, dim]
    private readonly float[] _kvNorm;                // [head_dim]
    private readonly WeightMatrix _woA;              // [o_groups · o_lora, heads · head_dim / o_groups]
    private readonly WeightMatrix[] _woAGroups;      // o_groups x [o_lora, heads · head_dim / o_groups] (rows of _woA)
    private readonly WeightMatrix _woB;              // [dim, o_groups · o_lora]
    private readonly float[] _attnSink;              // [heads]
    private readonly Compressor? _compressor;        // compress_ratio > 0
    private readonly Indexer? _indexer;              // compress_ratio == 4
    private readonly int _layer, _heads, _headDim, _window, _ratio, _groups, _oLora;
    private readonly float _eps, _softmaxScale;
    private readonly V4Rope _rope;                   // this layer's: compressed layers use compress_rope_theta + YaRN

    public Attention(ModelWeights w, ModelConfig c, int layer, V4Rope rope)
    {
        var v4 = c.V4!;
        string p = $"layers.{layer}.attn.";
        _layer = layer; _heads = c.NumHeads; _headDim = c.HeadDim; _window = v4.SlidingWindow; _ratio = v4.CompressRatios[layer];
        _groups = v4.OGroups; _oLora = v4.OLoraRank; _eps = c.RmsNormEps; _rope = rope;
        int dim = c.HiddenSize, qLora = c.QLoraRank!.Value, groupIn = _heads * _headDim / _groups;
        _wqA = V4Weights.Linear(w, p + "wq_a", qLora, dim);
        _qNorm = w.Vector(p + "q_norm.weight", qLora);
        _wqB = V4Weights.Linear(w, p + "wq_b", _heads * _headDim, qLora);
        _wkv = V4Weights.Linear(w, p + "wkv", _headDim, dim);
        _kvNorm = w.Vector(p + "kv_norm.weight", _headDim);
        _woA = V4Weights.Linear(w, p + "wo_a", _groups * _oLora, groupIn);
        _woAGroups = Enumerable.Range(0, _groups).Select(g => RowsOf(_woA, g * _oLora, _oLora)).ToArray();
        _woB = V4Weights.Linear(w, p + "wo_b", dim, _groups * _oLora);
        _attnSink = w.Vector(p + "attn_sink", _heads);
        _softmaxScale = (float)(1.0 / Math.Sqrt(_headDim));  // head_dim^-0.5, no YaRN mscale in V4
        if (_ratio > 0) _compressor = new Compressor(w, c, p + "compressor.", _ratio, _headDim, rotate: false);
        if (_ratio == 4) _indexer = new Indexer(w, c, p + "indexer.", _ratio);
    }

    /// <summary>Rows first..first+count of a matrix as a matrix over the same memory (wo_a's groups).</summary>
    private static unsafe WeightMatrix RowsOf(WeightMatrix m, int first, int count)
    {
        float* scales = null;
        if (m.BlockScales != null)
        {
            if (first % WeightMatrix.Fp8BlockSize != 0)
                throw new ModelFormatException($"{m.Name}: o_lora_rank {count} does not split the FP8 128-row blocks into groups");
            scales = m.BlockScales + first / WeightMatrix.Fp8BlockSize * m.ScaleCols;
        }
        return new WeightMatrix($"{m.Name}[{first}..]", m.Type, count, m.Cols, m.Row(first), scales, null);
    }

    /// <summary>y[n, dim] = attention of the rows' normed inputs x[n, dim], each at its own position, appending to the caches.</summary>
    public void Forward(V4Pass p, BatchRows<V4Session> rows, ReadOnlySpan<float> x, Span<float> y)
    {
        int n = rows.Count, hd = _headDim;
        var rope = _rope.Current;
        // q: qr = q_norm(wq_a(x)); q = wq_b(qr) [n, heads, head_dim], each head scaled to unit RMS, rope on its last dims
        var qr = p.QR.AsSpan(0, n * _wqA.Rows);
        var q = p.Q.AsSpan(0, n * _heads * hd);
        MatMul.Multiply(_wqA, x, qr, n);
        Ops.RmsNormRows(qr, _qNorm, qr, n, _wqA.Rows, _eps);
        MatMul.Multiply(_wqB, qr, q, n);
        // window kv: kv = kv_norm(wkv(x)) [n, head_dim], rope on its last dims
        var kv = p.KV.AsSpan(0, n * hd);
        MatMul.Multiply(_wkv, x, kv, n);
        Ops.RmsNormRows(kv, _kvNorm, kv, n, hd, _eps);
        for (int t = 0; t < n; t++)
        {
            int pos = rows.Positions[t];
            for (int h = 0; h < _heads; h++)
            {
                var qh = q.Slice((t * _heads + h) * hd, hd);
                TensorPrimitives.Multiply(qh, 1f / MathF.Sqrt(TensorPrimitives.Dot(qh, qh) / hd + _eps), qh);
                V4Rope.Rotate(rope, qh, pos);
            }
            V4Rope.Rotate(rope, kv.Slice(t * hd, hd), pos);
        }
        _compressor?.Project(p.CompKv, p.CompScore, x, n);
        _indexer?.Project(p, rows, rope, x, qr);

        // Caches, row by row in order (a compressor's state is sequential): the window slot, then any entry a block completes.
        for (int t = 0; t < n; t++)
        {
            int pos = rows.Positions[t];
            var s = rows.Sessions[t];
            var ring = s.Window[_layer];
            ring.Write(pos % ring.Capacity, kv.Slice(t * hd, hd));
            _compressor?.Step(s.KvState[_layer]!, s.Compressed[_layer]!, pos, p.CompKv.AsSpan(t * _compressor.Width, _compressor.Width),
                p.CompScore.AsSpan(t * _compressor.Width, _compressor.Width), rope);
            _indexer?.Step(p, s, _layer, t, pos, rope);
        }

        // Which compressed entries each row attends to: the indexer's top-k (CSA), all of them (HCA), none (window only).
        int stride = 0;
        for (int t = 0; t < n; t++) p.EntryLast[t] = _ratio > 0 ? (rows.Positions[t] + 1) / _ratio - 1 : -1;
        if (_indexer != null) stride = _indexer.Select(p, rows, _layer);
        else
        {
            for (int t = 0; t < n; t++) stride = Math.Max(stride, p.EntryLast[t] + 1);
            if (p.Selected.Length < n * stride) p.Selected = new int[Math.Max(n * stride, 2 * p.Selected.Length)];
            for (int t = 0; t < n; t++)
            {
                p.Counts[t] = p.EntryLast[t] + 1;
                for (int j = 0; j < p.Counts[t]; j++) p.Selected[t * stride + j] = j;
            }
        }
        var windows = rows.Caches(_layer, static (s, l) => s.Window[l]);
        var compressed = rows.Caches(_layer, static (s, l) => s.Compressed[l]!, slot: 1);
        SinkAttention.Attend(p.Q, p.O, n, _heads, hd, windows, _window, rows.Positions, compressed, p.Selected, p.Counts, stride,
            _attnSink, _softmaxScale);

        // o: undo the rope on the output's last dims, then the grouped low-rank projection
        var o = p.O.AsSpan(0, n * _heads * hd);                      // [n, groups, heads·head_dim / groups]
        for (int t = 0; t < n; t++)
            for (int h = 0; h < _heads; h++) V4Rope.Rotate(rope, o.Slice((t * _heads + h) * hd, hd), rows.Positions[t], inverse: true);
        int groupIn = _heads * hd / _groups;
        var og = p.OGroup.AsSpan(0, n * groupIn);                    // [n, heads·head_dim / groups] group g of o
        var low = p.OLow.AsSpan(0, n * _groups * _oLora);            // [n, groups, o_lora]
        var lowG = p.OLowGroup.AsSpan(0, n * _oLora);                // [n, o_lora]
        for (int g = 0; g < _groups; g++)
        {
            for (int t = 0; t < n; t++) o.Slice((t * _groups + g) * groupIn, groupIn).CopyTo(og.Slice(t * groupIn, groupIn));
            MatMul.Multiply(_woAGroups[g], og, lowG, n);             // einsum("bsgd,grd->bsgr")
            for (int t = 0; t < n; t++) lowG.Slice(t * _oLora, _oLora).CopyTo(low.Slice((t * _groups + g) * _oLora, _oLora));
        }
        MatMul.Multiply(_woB, low, y[..(n * _woB.Rows)], n);       // wo_b: [n, groups·o_lora] → [n, dim]
    }
}

/// <summary>
/// DeepSeek-V4's KV compressor (inference/model.py class Compressor): every compress_ratio tokens become one entry,
/// a softmax-gated sum per channel of their projections wkv(x) with gates wgate(x) + ape (a learned bias per position
/// in the block). With ratio 4 blocks overlap: an entry also weighs the previous block's tokens through the first half
/// of the projections (the second half serves its own block). The entry is RMS-normed, rotated at the position of the
/// block's first token, and, for the indexer's keys, Hadamard-rotated.
/// </summary>
internal sealed class Compressor
{
    private readonly WeightMatrix _wkv, _wgate;       // [coff · d, dim]
    private readonly float[] _ape;                    // [ratio, coff · d]
    private readonly float[] _norm;                   // [d]
    private readonly int _ratio, _d;
    private readonly bool _overlap, _rotate;
    private readonly float _eps;
    private readonly float[] _max, _sum, _e, _entry;  // [d] scratch of one compression

    /// <summary>Values per token of the projections: coff · d.</summary>
    public int Width { get; }

    public Compressor(ModelWeights w, ModelConfig c, string p, int ratio, int d, bool rotate)
    {
        _ratio = ratio; _d = d; _overlap = ratio == 4; _rotate = rotate; _eps = c.RmsNormEps;
        Width = (_overlap ? 2 : 1) * d;
        _wkv = V4Weights.Linear(w, p + "wkv", Width, c.HiddenSize);
        _wgate = V4Weights.Linear(w, p + "wgate", Width, c.HiddenSize);
        _ape = V4Weights.Floats(w, p + "ape", ratio, Width);
        _norm = w.Vector(p + "norm.weight", d);
        if (rotate && (d & (d - 1)) != 0) throw new ModelFormatException($"{w.Source}: index_head_dim {d} must be a power of two (Hadamard rotation)");
        _max = new float[d]; _sum = new float[d]; _e = new float[d]; _entry = new float[d];
    }

    /// <summary>kv = wkv(x), score = wgate(x): [n, coff · d] each (in float32).</summary>
    public void Project(float[] kv, float[] score, ReadOnlySpan<float> x, int n)
    {
        MatMul.Multiply(_wkv, x, kv.AsSpan(0, n * Width), n);
        MatMul.Multiply(_wgate, x, score.AsSpan(0, n * Width), n);
    }

    /// <summary>
    /// Adds the token at <paramref name="pos"/> (its projections kv, score [coff · d]) to the state; when it completes
    /// a block, writes the block's entry to cache[pos / ratio].
    /// </summary>
    public void Step(CompressorState s, KvCache cache, int pos, ReadOnlySpan<float> kv, Span<float> score, V4Rope.Table rope)
    {
        int r = _ratio, d = _d, W = Width, slot = pos % r;
        TensorPrimitives.Add(score, _ape.AsSpan(slot * W, W), score);
        int row = _overlap ? r + slot : slot;                        // overlap: rows r..2r are the current block
        kv.CopyTo(s.Kv.AsSpan(row * W, W));
        score.CopyTo(s.Score.AsSpan(row * W, W));
        if ((pos + 1) % r != 0) return;

        // entry[c] = Σ_rows softmax_rows(score[·, c]) · kv[·, c]; overlapping: the previous block's first halves, then
        // this block's second halves
        int rows = _overlap ? 2 * r : r;
        Span<float> Part(float[] a, int i) => a.AsSpan(i * W + (_overlap && i >= r ? d : 0), d);
        var m = _max.AsSpan(); var sum = _sum.AsSpan(); var e = _e.AsSpan(); var entry = _entry.AsSpan();
        m.Fill(float.NegativeInfinity);
        for (int i = 0; i < rows; i++) TensorPrimitives.Max(m, Part(s.Score, i), m);
        sum.Clear(); entry.Clear();
        for (int i = 0; i < rows; i++)
        {
            TensorPrimitives.Subtract(Part(s.Score, i), m, e);
            TensorPrimitives.Exp(e, e);
            TensorPrimitives.Add(sum, e, sum);
            TensorPrimitives.MultiplyAdd(Part(s.Kv, i), e, entry, entry);
        }
        TensorPrimitives.Divide(entry, sum, entry);
        if (_overlap)                                                // this block becomes the next one's previous block
        {
            s.Kv.AsSpan(r * W, r * W).CopyTo(s.Kv);
            s.Score.AsSpan(r * W, r * W).CopyTo(s.Score);
        }

        Ops.RmsNorm(entry, _norm, entry, _eps);
        V4Rope.Rotate(rope, entry, pos + 1 - r);                     // at the block's first position
        if (_rotate) Hadamard.Rotate(entry);
        cache.Write(pos / r, entry);
    }
}

/// <summary>
/// DeepSeek-V4's lightning indexer (inference/model.py class Indexer): like V3.2's, scores I[t, j] = Σ_h w[t, h] ·
/// ReLU(q[t, h] · k_j) and keeps the top index_topk, but its keys k_j are the entries of its own
/// <see cref="Compressor"/> (index_head_dim wide, Hadamard-rotated), and its queries come from the attention's q
/// latent (wq_b), rotated on their LAST rope dims with interleaved pairs, then Hadamard-rotated.
/// </summary>
internal sealed class Indexer
{
    private readonly WeightMatrix _wqB;               // [index_heads · index_head_dim, q_lora]
    private readonly WeightMatrix _weightsProj;       // [index_heads, dim]
    private readonly Compressor _compressor;
    private readonly int _heads, _headDim, _topk;
    private readonly float _weightScale;              // index_head_dim^-0.5 · index_heads^-0.5

    public Indexer(ModelWeights w, ModelConfig c, string p, int ratio)
    {
        _heads = c.IndexNHeads; _headDim = c.IndexHeadDim; _topk = c.IndexTopk;
        _wqB = V4Weights.Linear(w, p + "wq_b", _heads * _headDim, c.QLoraRank!.Value);
        _weightsProj = V4Weights.Linear(w, p + "weights_proj", _heads, c.HiddenSize);
        _compressor = new Compressor(w, c, p + "compressor.", ratio, _headDim, rotate: true);
        _weightScale = (float)(1.0 / Math.Sqrt(_headDim) / Math.Sqrt(_heads));
    }

    /// <summary>q = hadamard(rope(wq_b(qr))) [n, heads, head_dim]; weights = weights_proj(x) · scale [n, heads]; the compressor's projections.</summary>
    public void Project(V4Pass p, BatchRows<V4Session> rows, V4Rope.Table rope, ReadOnlySpan<float> x, ReadOnlySpan<float> qr)
    {
        int n = rows.Count;
        var q = p.IdxQ.AsSpan(0, n * _heads * _headDim);
        MatMul.Multiply(_wqB, qr, q, n);
        for (int t = 0; t < n; t++)
            for (int h = 0; h < _heads; h++)
            {
                var qh = q.Slice((t * _heads + h) * _headDim, _headDim);
                V4Rope.Rotate(rope, qh, rows.Positions[t]);
                Hadamard.Rotate(qh);
            }
        var weights = p.IdxWeights.AsSpan(0, n * _heads);
        MatMul.Multiply(_weightsProj, x, weights, n);
        TensorPrimitives.Multiply(weights, _weightScale, weights);
        _compressor.Project(p.IdxKv, p.IdxScore, x, n);
    }

    /// <summary>Row t's token into the indexer's compressor (and its key cache when a block completes).</summary>
    public void Step(V4Pass p, V4Session s, int layer, int t, int pos, V4Rope.Table rope) =>
        _compressor.Step(s.IndexState[layer]!, s.IndexKeys[layer]!, pos, p.IdxKv.AsSpan(t * _compressor.Width, _compressor.Width),
            p.IdxScore.AsSpan(t * _compressor.Width, _compressor.Width), rope);

    /// <summary>
    /// Each row's top-k compressed entries among 0..p.EntryLast[t] into p.Selected[t · index_topk ..][..p.Counts[t]]
    /// (ascending); returns the stride, index_topk.
    /// </summary>
    public int Select(V4Pass p, BatchRows<V4Session> rows, int layer)
    {
        int n = rows.Count;
        if (p.Selected.Length < n * _topk) p.Selected = new int[Math.Max(n * _topk, 2 * p.Selected.Length)];
        if (p.EntryLast.AsSpan(0, n).ContainsAnyExcept(-1) is false)   // no entry yet for any row: nothing to score
        {
            p.Counts.AsSpan(0, n).Clear();
            return _topk;
        }
        var keys = rows.Caches(layer, static (s, l) => s.IndexKeys[l]!);
        LightningIndex.Select(p.IdxQ, p.IdxWeights, n, _heads, _headDim, keys, p.EntryLast, _topk, p.Selected, p.Counts);
        return _topk;
    }
}
