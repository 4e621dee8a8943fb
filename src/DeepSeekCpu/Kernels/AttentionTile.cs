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

    /// <summary>
    /// Flash attention of one block of queries over the key/value tiles of <typeparamref name="TSource"/>: q is
    /// [rows, heads, dk] (the heads of a row share what the row sees), o [rows, heads, dv]. Tiles of
    /// <see cref="KvCache.Tile"/> positions 0 .. the last row's <see cref="ITileSource.Visible"/>: scores, the causal
    /// mask (−∞ past each row's own limit, only on tiles that cross the first row's), the online
    /// <see cref="Softmax"/>, the weighted sum of the values; then o / L. The source is a struct type parameter, so the
    /// JIT compiles one loop per source with its tile reads inlined (no virtual call per tile).
    /// </summary>
    public static void Flash<TSource>(ref TSource source, float* q, int rows, int heads, int dk, int dv, float scale, float* o)
        where TSource : struct, ITileSource
    {
        int T = KvCache.Tile, count = rows * heads;
        int first = source.Visible(0), len = source.Visible(rows - 1);
        fixed (float* s = Grow(ref _scores, count * T), max = Grow(ref _max, count), sum = Grow(ref _sum, count))
        {
            // s [rows·heads, T] this tile's scores, then weights; max M and sum L per query
            Begin(o, max, sum, count, dv);
            for (int j0 = 0; j0 < len; j0 += T)
            {
                int n = Math.Min(T, len - j0);
                var k = source.Keys(j0, n, out int kStride);
                fixed (float* kp = k)
                {
                    Scores(q, count, dk, kp, n, kStride, scale, s, T);
                    if (j0 + n > first)                                  // the tile crosses the first row's limit: causal mask
                        for (int i = 0; i < rows; i++)
                            for (int j = Math.Max(0, source.Visible(i) - j0); j < n; j++)
                                for (int g = 0; g < heads; g++) s[(i * heads + g) * T + j] = float.NegativeInfinity;
                    Softmax(s, T, n, max, sum, o, count, dv);
                    fixed (float* vp = source.Values(j0, n, k, kStride, out int vStride)) Accumulate(s, T, count, vp, n, vStride, dv, o);
                }
            }
            End(o, sum, count, dv);
        }
    }

    /// <summary>Where <see cref="Flash"/>'s tiles come from (a cache's rows, gathered rows, an expanded cache).</summary>
    internal interface ITileSource
    {
        /// <summary>Positions query row <paramref name="row"/> of the block sees: 0 .. Visible − 1 (nondecreasing in row).</summary>
        int Visible(int row);

        /// <summary>Keys of positions j0 .. j0 + n − 1 as float32, key j at [j·stride ..][..dk].</summary>
        ReadOnlySpan<float> Keys(int j0, int n, out int stride);

        /// <summary>Their values, value j at [j·stride ..][..dv]; <paramref name="keys"/> is the tile just read (values that are a prefix of the keys read nothing more).</summary>
        ReadOnlySpan<float> Values(int j0, int n, ReadOnlySpan<float> keys, int keyStride, out int stride);
    }

    [ThreadStatic] private static float[]? _scores, _max, _sum;

    /// <summary>A per-thread buffer of at least <paramref name="length"/> floats.</summary>
    internal static float[] Grow(ref float[]? buffer, int length) =>
        buffer is { } b && b.Length >= length ? b : (buffer = new float[length]);

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
