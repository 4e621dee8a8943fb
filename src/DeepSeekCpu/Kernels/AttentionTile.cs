using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using static DeepSeekCpu.Kernels.FloatDot;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// The two products of attention over one tile of cached rows, for a group of query heads that share those rows (a
/// GQA group, or all MLA heads over the latent cache): scores of every head against every row, and the weighted sum
/// of the rows into every head's output. One call per tile instead of one per (row, head): each cached row is loaded
/// once per 4 heads while it sits in registers, and no call, reduction or bounds check is paid per row and head —
/// at a 4K context that per-call work was most of a decoding step's attention time. Bodies at 512, 256 and 128 bits
/// (<see cref="IWidth{TVector}"/>, as <see cref="FloatDot"/>), with the scalar specification beside them.
/// </summary>
internal static unsafe class AttentionTile
{
    /// <summary>
    /// s[g·sStride + j] = scale · Σ_c q[g·dk + c] · k[j·kStride + c] for g &lt; heads, j &lt; m.
    /// </summary>
    public static void Scores(float* q, int heads, int dk, float* k, int m, int kStride, float scale, float* s, int sStride)
    {
        if (Vector512.IsHardwareAccelerated && dk >= 16) Scores<W512, Vector512<float>>(q, heads, dk, k, m, kStride, scale, s, sStride);
        else if (Vector256.IsHardwareAccelerated && dk >= 8) Scores<W256, Vector256<float>>(q, heads, dk, k, m, kStride, scale, s, sStride);
        else if (Vector128.IsHardwareAccelerated && dk >= 4) Scores<W128, Vector128<float>>(q, heads, dk, k, m, kStride, scale, s, sStride);
        else ScoresScalar(q, heads, dk, k, m, kStride, scale, s, sStride);
    }

    /// <summary>
    /// o[g·dv + c] += Σ_j p[g·pStride + j] · v[j·vStride + c] for g &lt; heads, c &lt; dv, summed in order of j.
    /// </summary>
    public static void Accumulate(float* p, int pStride, int heads, float* v, int m, int vStride, int dv, float* o)
    {
        if (Vector512.IsHardwareAccelerated && dv >= 16) Accumulate<W512, Vector512<float>>(p, pStride, heads, v, m, vStride, dv, o);
        else if (Vector256.IsHardwareAccelerated && dv >= 8) Accumulate<W256, Vector256<float>>(p, pStride, heads, v, m, vStride, dv, o);
        else if (Vector128.IsHardwareAccelerated && dv >= 4) Accumulate<W128, Vector128<float>>(p, pStride, heads, v, m, vStride, dv, o);
        else AccumulateScalar(p, pStride, heads, v, m, vStride, dv, o);
    }

    /// <summary>
    /// Starts flash attention's online softmax for <paramref name="heads"/> heads: outputs o [heads, dv] zero, running
    /// maxima M = −∞ and denominators L = 0.
    /// </summary>
    public static void Begin(float* o, float* max, float* sum, int heads, int dv)
    {
        new Span<float>(o, heads * dv).Clear();
        new Span<float>(max, heads).Fill(float.NegativeInfinity);
        new Span<float>(sum, heads).Clear();
    }

    /// <summary>
    /// One tile of n scores per head (s[g·sStride ..][..n]) into the running softmax: M_g' = max(M_g, max s_g),
    /// s_g ← exp(s_g − M_g') in place (the tile's unnormalised weights, for <see cref="Accumulate"/>),
    /// L_g ← L_g·exp(M_g − M_g') + Σ s_g, and what o_g holds so far rescaled by exp(M_g − M_g') when the maximum rose.
    /// </summary>
    public static void Softmax(float* s, int sStride, int n, float* max, float* sum, float* o, int heads, int dv)
    {
        for (int g = 0; g < heads; g++)
        {
            var sg = new Span<float>(s + g * sStride, n);
            float mNew = Math.Max(max[g], TensorPrimitives.Max(sg));
            float alpha = MathF.Exp(max[g] - mNew);                  // 0 on the first tile (M = −∞)
            TensorPrimitives.Subtract(sg, mNew, sg);
            TensorPrimitives.Exp(sg, sg);
            sum[g] = sum[g] * alpha + TensorPrimitives.Sum(sg);
            max[g] = mNew;
            if (alpha != 1f)
            {
                var og = new Span<float>(o + g * dv, dv);
                TensorPrimitives.Multiply(og, alpha, og);
            }
        }
    }

    /// <summary>Ends the online softmax: o_g ← o_g / L_g.</summary>
    public static void End(float* o, float* sum, int heads, int dv)
    {
        for (int g = 0; g < heads; g++)
        {
            var og = new Span<float>(o + g * dv, dv);
            TensorPrimitives.Multiply(og, 1f / sum[g], og);
        }
    }

    // ---------- scalar specification ----------

    public static void ScoresScalar(float* q, int heads, int dk, float* k, int m, int kStride, float scale, float* s, int sStride)
    {
        for (int g = 0; g < heads; g++)
            for (int j = 0; j < m; j++)
            {
                float dot = 0;
                for (int c = 0; c < dk; c++) dot += q[g * dk + c] * k[j * kStride + c];
                s[g * sStride + j] = dot * scale;
            }
    }

    public static void AccumulateScalar(float* p, int pStride, int heads, float* v, int m, int vStride, int dv, float* o)
    {
        for (int g = 0; g < heads; g++)
            for (int c = 0; c < dv; c++)
            {
                float acc = o[g * dv + c];
                for (int j = 0; j < m; j++) acc += p[g * pStride + j] * v[j * vStride + c];
                o[g * dv + c] = acc;
            }
    }

    // ---------- vector bodies ----------

    /// <summary>
    /// Per row j: 4 heads at a time, 4 accumulators (independent FMA chains) over the row's vectors, each vector of
    /// k_j loaded once for the 4; the last heads one at a time with 2 chains; columns past the last full vector scalar.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores<TW, TV>(float* q, int heads, int dk, float* k, int m, int kStride, float scale, float* s, int sStride)
        where TW : IWidth<TV> where TV : unmanaged
    {
        int n = TW.Count, full = dk - dk % n;
        for (int j = 0; j < m; j++)
        {
            float* kj = k + (long)j * kStride;
            int g = 0;
            for (; g + 4 <= heads; g += 4)
            {
                float* q0 = q + g * dk, q1 = q0 + dk, q2 = q1 + dk, q3 = q2 + dk;
                TV a0 = TW.Zero, a1 = TW.Zero, a2 = TW.Zero, a3 = TW.Zero;
                for (int c = 0; c < full; c += n)
                {
                    var kv = TW.Load(kj + c);
                    a0 = TW.Fma(TW.Load(q0 + c), kv, a0);
                    a1 = TW.Fma(TW.Load(q1 + c), kv, a1);
                    a2 = TW.Fma(TW.Load(q2 + c), kv, a2);
                    a3 = TW.Fma(TW.Load(q3 + c), kv, a3);
                }
                float t0 = TW.Sum(a0), t1 = TW.Sum(a1), t2 = TW.Sum(a2), t3 = TW.Sum(a3);
                for (int c = full; c < dk; c++)
                {
                    t0 += q0[c] * kj[c]; t1 += q1[c] * kj[c]; t2 += q2[c] * kj[c]; t3 += q3[c] * kj[c];
                }
                s[g * sStride + j] = t0 * scale;
                s[(g + 1) * sStride + j] = t1 * scale;
                s[(g + 2) * sStride + j] = t2 * scale;
                s[(g + 3) * sStride + j] = t3 * scale;
            }
            for (; g < heads; g++)
            {
                float* qg = q + g * dk;
                TV a0 = TW.Zero, a1 = TW.Zero;
                int c = 0;
                for (; c + 2 * n <= full; c += 2 * n)
                {
                    a0 = TW.Fma(TW.Load(qg + c), TW.Load(kj + c), a0);
                    a1 = TW.Fma(TW.Load(qg + c + n), TW.Load(kj + c + n), a1);
                }
                if (c < full) a0 = TW.Fma(TW.Load(qg + c), TW.Load(kj + c), a0);
                float t = TW.Sum(TW.Add(a0, a1));
                for (c = full; c < dk; c++) t += qg[c] * kj[c];
                s[g * sStride + j] = t * scale;
            }
        }
    }

    /// <summary>
    /// Per vector of output columns: 4 heads' accumulators held in registers over all m rows (each row's vector
    /// loaded once for the 4, each weight broadcast), then stored; the last heads one at a time; tail columns scalar.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Accumulate<TW, TV>(float* p, int pStride, int heads, float* v, int m, int vStride, int dv, float* o)
        where TW : IWidth<TV> where TV : unmanaged
    {
        int n = TW.Count, full = dv - dv % n;
        for (int c = 0; c < full; c += n)
        {
            int g = 0;
            for (; g + 4 <= heads; g += 4)
            {
                float* o0 = o + g * dv + c, p0 = p + g * pStride;
                TV a0 = TW.Load(o0), a1 = TW.Load(o0 + dv), a2 = TW.Load(o0 + 2 * dv), a3 = TW.Load(o0 + 3 * dv);
                for (int j = 0; j < m; j++)
                {
                    var vv = TW.Load(v + (long)j * vStride + c);
                    a0 = TW.Fma(TW.Broadcast(p0[j]), vv, a0);
                    a1 = TW.Fma(TW.Broadcast(p0[pStride + j]), vv, a1);
                    a2 = TW.Fma(TW.Broadcast(p0[2 * pStride + j]), vv, a2);
                    a3 = TW.Fma(TW.Broadcast(p0[3 * pStride + j]), vv, a3);
                }
                TW.Store(a0, o0); TW.Store(a1, o0 + dv); TW.Store(a2, o0 + 2 * dv); TW.Store(a3, o0 + 3 * dv);
            }
            for (; g < heads; g++)
            {
                float* og = o + g * dv + c, pg = p + g * pStride;
                TV a = TW.Load(og);
                for (int j = 0; j < m; j++) a = TW.Fma(TW.Broadcast(pg[j]), TW.Load(v + (long)j * vStride + c), a);
                TW.Store(a, og);
            }
        }
        if (full < dv)
            for (int g = 0; g < heads; g++)
                for (int c = full; c < dv; c++)
                {
                    float acc = o[g * dv + c];
                    for (int j = 0; j < m; j++) acc += p[g * pStride + j] * v[(long)j * vStride + c];
                    o[g * dv + c] = acc;
                }
    }
}
