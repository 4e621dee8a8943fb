using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.DeepSeek.V4;

/// <summary>
/// A DeepSeek-V4 block (inference/model.py class Block) over hc residual streams h [hc, dim] per row: each half
///   x, post, comb = hc_pre(h)          (x = Σ_i pre_i h_i; pre, post, comb from the streams through hc_*_fn, Sinkhorn)
///   x = attn(attn_norm(x)) | ffn(ffn_norm(x))
///   h = hc_post(x, h, post, comb)      (h_j ← post_j · x + Σ_i comb_ij h_i)
/// </summary>
internal sealed class Block
{
    private readonly Attention _attn;
    private readonly MoE _ffn;
    private readonly float[] _attnNorm, _ffnNorm;        // [dim]
    private readonly HcMix _hcAttn, _hcFfn;
    private readonly int _dim;
    private readonly float _eps;

    public long ExpertBytes => _ffn.ExpertBytes;
    public IEnumerable<WeightMatrix> ExpertMatrices => _ffn.ExpertMatrices;

    public Block(ModelWeights w, ModelConfig c, int layer, V4Rope rope)
    {
        string p = $"layers.{layer}.";
        _dim = c.HiddenSize; _eps = c.RmsNormEps;
        _attn = new Attention(w, c, layer, rope);
        _ffn = new MoE(w, c, layer);
        _attnNorm = w.Vector(p + "attn_norm.weight", _dim);
        _ffnNorm = w.Vector(p + "ffn_norm.weight", _dim);
        _hcAttn = new HcMix(w, c, p + "hc_attn_");
        _hcFfn = new HcMix(w, c, p + "hc_ffn_");
    }

    /// <summary>h [n, hc, dim] through the block, each row at its own position; tokens [n] route the hash layers.</summary>
    public void Forward(V4Pass p, BatchRows<V4Session> rows, ReadOnlySpan<int> tokens, Span<float> h)
    {
        int n = rows.Count;
        var x = p.X.AsSpan(0, n * _dim);                             // [n, dim]
        var y = p.Out.AsSpan(0, n * _dim);                           // [n, dim]
        _hcAttn.Pre(p, h, x, n);
        Ops.RmsNormRows(x, _attnNorm, x, n, _dim, _eps);
        _attn.Forward(p, rows, x, y);
        _hcAttn.Post(p, h, y, n);

        _hcFfn.Pre(p, h, x, n);
        Ops.RmsNormRows(x, _ffnNorm, x, n, _dim, _eps);
        _ffn.Forward(p, x, tokens, y, n);
        _hcFfn.Post(p, h, y, n);
    }
}

/// <summary>
/// One hyper-connection mix (Block.hc_pre / hc_post, or the head's hc_head when <see cref="Head"/>): mixes =
/// fn · flatten(h) · rsqrt(mean(h²) + eps), then pre/post/comb by <see cref="HyperConnections.SplitSinkhorn"/>.
/// </summary>
internal sealed class HcMix
{
    private readonly WeightMatrix _fn;                   // [(2+hc)·hc, hc·dim], or [hc, hc·dim] for the head
    private readonly float[] _scale, _base;              // [3] (head: [1]), [(2+hc)·hc] (head: [hc])
    private readonly int _hc, _dim, _iters;
    private readonly float _normEps, _hcEps;
    public bool Head { get; }

    public HcMix(ModelWeights w, ModelConfig c, string p, bool head = false)
    {
        var v4 = c.V4!;
        _hc = v4.HcMult; _dim = c.HiddenSize; _iters = v4.HcSinkhornIters; _normEps = c.RmsNormEps; _hcEps = (float)v4.HcEps; Head = head;
        int mix = head ? _hc : (2 + _hc) * _hc;
        _fn = w.Matrix(p + "fn", mix, _hc * _dim);
        _scale = w.Vector(p + "scale", head ? 1 : 3);
        _base = w.Vector(p + "base", mix);
    }

    /// <summary>x [n, dim] = Σ_i pre_i h_i per row, keeping post and comb in the pass for <see cref="Post"/>.</summary>
    public void Pre(V4Pass p, ReadOnlySpan<float> h, Span<float> x, int n)
    {
        int mix = _fn.Rows, hd = _hc * _dim;
        var mixes = p.Mixes.AsSpan(0, n * mix);
        MatMul.Multiply(_fn, h[..(n * hd)], mixes, n);
        for (int t = 0; t < n; t++)
        {
            var ht = h.Slice(t * hd, hd);
            var m = mixes.Slice(t * mix, mix);
            float rsqrt = 1f / MathF.Sqrt(System.Numerics.Tensors.TensorPrimitives.Dot(ht, ht) / hd + _normEps);
            System.Numerics.Tensors.TensorPrimitives.Multiply(m, rsqrt, m);
            var pre = p.Pre.AsSpan(t * _hc, _hc);
            if (Head)
                for (int i = 0; i < _hc; i++) pre[i] = 1f / (1f + MathF.Exp(-(m[i] * _scale[0] + _base[i]))) + _hcEps;
            else
                HyperConnections.SplitSinkhorn(m, _scale, _base, _hc, _iters, _hcEps, pre, p.Post.AsSpan(t * _hc, _hc), p.Comb.AsSpan(t * _hc * _hc, _hc * _hc));
            HyperConnections.Collapse(ht, pre, x.Slice(t * _dim, _dim));
        }
    }

    /// <summary>h_j ← post_j · y + Σ_i comb_ij h_i for every row.</summary>
    public void Post(V4Pass p, Span<float> h, ReadOnlySpan<float> y, int n)
    {
        int hd = _hc * _dim;
        for (int t = 0; t < n; t++)
            HyperConnections.Expand(h.Slice(t * hd, hd), y.Slice(t * _dim, _dim), p.Post.AsSpan(t * _hc, _hc), p.Comb.AsSpan(t * _hc * _hc, _hc * _hc), p.Streams);
    }
}
