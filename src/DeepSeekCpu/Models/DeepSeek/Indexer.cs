using System.Numerics.Tensors;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.DeepSeek;

/// <summary>
/// The lightning indexer of DeepSeek Sparse Attention (DeepSeek-V3.2-Exp paper §2.1; inference/model.py class Indexer,
/// commit 87e509a2). A few small heads score every cached token for the current query,
///   I[t, s] = Σ_h w[t, h] · ReLU(q[t, h] · k[s]),
/// and MLA then attends only to the index_topk tokens of highest score (all of them while the context is shorter).
/// Queries come from MLA's normalised q latent (its own wq_b), one key per token from the hidden state (wk, then a
/// LayerNorm), per-head weights from weights_proj. The first qk_rope_head_dim dims of q and k carry RoPE on halves
/// (NOT interleaved, unlike MLA: DeepSeek's fix 8631a81), and both are Hadamard-rotated. The keys are cached per layer
/// beside the latent cache (<see cref="DeepSeekSession.IndexCache"/>).
/// </summary>
internal sealed class Indexer
{
    private readonly WeightMatrix _wqB;                 // [n_heads * head_dim, q_lora]
    private readonly WeightMatrix _wk;                  // [head_dim, dim]
    private readonly float[] _kNormWeight, _kNormBias;  // [head_dim] LayerNorm k_norm
    private readonly WeightMatrix _weightsProj;         // [n_heads, dim]
    private readonly int _heads, _headDim, _rope, _topk;
    private readonly float _weightScale;                // n_heads^-0.5 · head_dim^-0.5

    /// <summary>LayerNorm epsilon (model.py LayerNorm's default; the config has no field for it).</summary>
    private const float KNormEps = 1e-6f;

    public Indexer(ModelWeights w, ModelConfig c, string p)
    {
        _heads = c.IndexNHeads; _headDim = c.IndexHeadDim; _rope = c.QkRopeHeadDim; _topk = c.IndexTopk;
        _wqB = w.Matrix(p + "wq_b.weight", _heads * _headDim, c.QLoraRank!.Value);
        _wk = w.Matrix(p + "wk.weight", _headDim, c.HiddenSize);
        _kNormWeight = w.Vector(p + "k_norm.weight", _headDim);
        _kNormBias = w.Vector(p + "k_norm.bias", _headDim);
        _weightsProj = w.Matrix(p + "weights_proj.weight", _heads, c.HiddenSize);
        // weights = weights_proj(x) * n_heads ** -0.5, then * softmax_scale (head_dim ** -0.5) in Indexer.forward
        _weightScale = (float)(1.0 / Math.Sqrt(_heads) / Math.Sqrt(_headDim));
    }

    /// <summary>
    /// For rows x[n, dim] with MLA's normalised q latent qr[n, q_lora]: caches each row's index key at its position,
    /// then writes the positions each row attends to into p.TopkIndices[t * index_topk ..][..p.TopkCounts[t]].
    /// </summary>
    public void Forward(DeepSeekPass p, BatchRows<DeepSeekSession> rows, int layer, RopeTable rope,
        ReadOnlySpan<float> x, ReadOnlySpan<float> qr)
    {
        int n = rows.Count, width = _heads * _headDim;
        var q = p.IndexQ.AsSpan(0, n * width);                       // [n, n_heads, head_dim]
        var k = p.IndexK.AsSpan(0, n * _headDim);                    // [n, head_dim]
        var weights = p.IndexWeights.AsSpan(0, n * _heads);          // [n, n_heads]

        // q = wq_b(qr); k = wk(x); weights = weights_proj(x)
        MatMul.Multiply(_wqB, qr, q, n);
        var b = p.Batch;
        b.Clear();
        b.Add(_wk, x, n, k);
        b.Add(_weightsProj, x, n, weights);
        ExpertGemm.Run(b);
        TensorPrimitives.Multiply(weights, _weightScale, weights);

        for (int t = 0; t < n; t++)
        {
            int pos = rows.Positions[t];
            var cos = rope.Cos(pos); var sin = rope.Sin(pos);
            // q = rotate_activation(cat(rope(q_pe), q_nope)) per head: the rope part comes FIRST here
            for (int h = 0; h < _heads; h++)
            {
                var qh = q.Slice((t * _heads + h) * _headDim, _headDim);
                Ops.Rope(qh[.._rope], cos, sin, interleaved: false);
                Hadamard.Rotate(qh);
            }
            // k = rotate_activation(cat(rope(k_pe), k_nope)) of k_norm(wk(x)); cached at pos
            var kt = k.Slice(t * _headDim, _headDim);
            LayerNorm(kt, _kNormWeight, _kNormBias);
            Ops.Rope(kt[.._rope], cos, sin, interleaved: false);
            Hadamard.Rotate(kt);
            rows.Sessions[t].IndexCache![layer].Write(pos, kt);
        }

        var caches = rows.Caches(layer, static (s, l) => s.IndexCache![l]);   // per row [ctx, head_dim]
        LightningIndex.Select(p.IndexQ, p.IndexWeights, n, _heads, _headDim, caches, rows.Positions, _topk,
            p.TopkIndices, p.TopkCounts);
    }

    /// <summary>torch's F.layer_norm over one vector in place: (x − mean) / sqrt(var + eps) · weight + bias (biased variance).</summary>
    private static void LayerNorm(Span<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias)
    {
        float mean = TensorPrimitives.Sum(x) / x.Length;
        TensorPrimitives.Subtract(x, mean, x);
        float inv = 1f / MathF.Sqrt(TensorPrimitives.Dot(x, x) / x.Length + KNormEps);
        TensorPrimitives.Multiply(x, inv, x);
        TensorPrimitives.FusedMultiplyAdd(x, weight, bias, x);
    }
}
