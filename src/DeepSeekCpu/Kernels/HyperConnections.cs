using System.Numerics.Tensors;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Manifold-constrained hyper-connections (mHC; DeepSeek-V4-Flash inference/model.py Block.hc_pre / hc_post and
/// kernel.py hc_split_sinkhorn, which the fixture README transcribes): the residual is hc streams [hc, dim]; a block
/// reads a weighted sum of them and writes its output back into every stream while mixing the streams by a matrix made
/// doubly stochastic (Sinkhorn-Knopp), so the streams' total stays bounded.
/// </summary>
internal static class HyperConnections
{
    /// <summary>
    /// Splits one row of mixes [(2 + hc) · hc] into pre [hc] = sigmoid(m·s0 + b) + eps, post [hc] = 2·sigmoid(m·s1 + b)
    /// and comb [hc, hc] = softmax over each row of (m·s2 + b) + eps, then normalised: columns once, then
    /// <paramref name="iters"/> − 1 rounds of rows then columns, each sum + eps in the denominator.
    /// </summary>
    public static void SplitSinkhorn(ReadOnlySpan<float> mixes, ReadOnlySpan<float> scale, ReadOnlySpan<float> bias, int hc,
        int iters, float eps, Span<float> pre, Span<float> post, Span<float> comb)
    {
        for (int i = 0; i < hc; i++)
        {
            pre[i] = Sigmoid(mixes[i] * scale[0] + bias[i]) + eps;
            post[i] = 2 * Sigmoid(mixes[hc + i] * scale[1] + bias[hc + i]);
        }
        for (int i = 0; i < hc * hc; i++) comb[i] = mixes[2 * hc + i] * scale[2] + bias[2 * hc + i];
        for (int r = 0; r < hc; r++)
        {
            var row = comb.Slice(r * hc, hc);
            Ops.Softmax(row);
            TensorPrimitives.Add(row, eps, row);
        }
        NormaliseColumns(comb, hc, eps);
        for (int it = 1; it < iters; it++)
        {
            for (int r = 0; r < hc; r++)
            {
                var row = comb.Slice(r * hc, hc);
                TensorPrimitives.Multiply(row, 1f / (TensorPrimitives.Sum(row) + eps), row);
            }
            NormaliseColumns(comb, hc, eps);
        }
    }

    private static void NormaliseColumns(Span<float> comb, int hc, float eps)
    {
        for (int c = 0; c < hc; c++)
        {
            float s = 0;
            for (int r = 0; r < hc; r++) s += comb[r * hc + c];
            s += eps;
            for (int r = 0; r < hc; r++) comb[r * hc + c] /= s;
        }
    }

    private static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    /// <summary>hc_pre's reduction: y [dim] = Σ_i pre[i] · streams[i] for streams [hc, dim].</summary>
    public static void Collapse(ReadOnlySpan<float> streams, ReadOnlySpan<float> pre, Span<float> y)
    {
        int dim = y.Length;
        y.Clear();
        for (int i = 0; i < pre.Length; i++) TensorPrimitives.MultiplyAdd(streams.Slice(i * dim, dim), pre[i], y, y);
    }

    /// <summary>
    /// hc_post: streams [hc, dim] ← post[j] · x + Σ_i comb[i, j] · streams[i] for every stream j (comb [hc, hc]);
    /// <paramref name="scratch"/> holds [hc, dim].
    /// </summary>
    public static void Expand(Span<float> streams, ReadOnlySpan<float> x, ReadOnlySpan<float> post, ReadOnlySpan<float> comb, Span<float> scratch)
    {
        int dim = x.Length, hc = post.Length;
        var y = scratch[..(hc * dim)];
        for (int j = 0; j < hc; j++)
        {
            var yj = y.Slice(j * dim, dim);
            TensorPrimitives.Multiply(x, post[j], yj);
            for (int i = 0; i < hc; i++) TensorPrimitives.MultiplyAdd(streams.Slice(i * dim, dim), comb[i * hc + j], yj, yj);
        }
        y.CopyTo(streams);
    }
}
