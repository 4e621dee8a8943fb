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
            float* sg = s + g * sStride;
            float mNew = Math.Max(max[g], TensorPrimitives.Max(new ReadOnlySpan<float>(sg, n)));
            float alpha = VectorExp.Exp(max[g] - mNew);              // 0 on the first tile (M = −∞)
            sum[g] = sum[g] * alpha + ExpShifted(sg, n, mNew);
            max[g] = mNew;
            if (alpha != 1f)
            {
                var og = new Span<float>(o + g * dv, dv);
                TensorPrimitives.Multiply(og, alpha, og);
            }
        }
    }

    /// <summary>
    /// s ← exp(s − m) over n scores (<see cref="VectorExp"/>, whole vectors then the tail lane by lane), returning their
    /// sum: the vectors' lanes summed, then the tail. A tile is 32 scores, where TensorPrimitives' float64-widening
    /// exp and its per-call setup had been a sixth of a decoding step's attention.
    /// </summary>
    internal static float ExpShifted(float* s, int n, float m)
    {
        if (Vector512.IsHardwareAccelerated && n >= W512.Count) return ExpShifted<W512, Vector512<float>>(s, n, m);
        if (Vector256.IsHardwareAccelerated && n >= W256.Count) return ExpShifted<W256, Vector256<float>>(s, n, m);
        float total = 0;
        for (int i = 0; i < n; i++) total += s[i] = VectorExp.Exp(s[i] - m);
        return total;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ExpShifted<TW, TV>(float* s, int n, float m) where TW : IWidth<TV> where TV : unmanaged
    {
        int i = 0, L = TW.Count;
        TV acc = TW.Zero, mv = TW.Broadcast(m);
        for (; i + L <= n; i += L) { TV e = TW.Exp(TW.Subtract(TW.Load(s + i), mv)); TW.Store(e, s + i); acc = TW.Add(acc, e); }
        float total = TW.Sum(acc);
        for (; i < n; i++) total += s[i] = VectorExp.Exp(s[i] - m);
        return total;
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
    /// <see cref="Softmax"/>, the weighted sum of the values; then o / L. One row (decoding) per head
    /// (<see cref="FlashPartial"/>), several (a prompt chunk) with the queries in lanes (<see cref="FlashBlock"/>).
    /// The source is a struct type parameter, so the JIT compiles one loop per source with its tile reads inlined (no
    /// virtual call per tile).
    /// </summary>
    public static void Flash<TSource>(ref TSource source, float* q, int rows, int heads, int dk, int dv, float scale, float* o)
        where TSource : struct, ITileSource
    {
        int count = rows * heads, cp = (count + Lanes - 1) / Lanes * Lanes;
        fixed (float* max = Grow(ref _max, cp), sum = Grow(ref _sum, cp))
        {
            if (rows > 1) FlashBlock(ref source, q, rows, heads, dk, dv, scale, o, max, sum);
            else FlashPartial(ref source, q, heads, dk, dv, scale, o, max, sum);
            End(o, sum, count, dv);
        }
    }

    /// <summary>
    /// <see cref="Flash"/> of one query row without the final division: o [heads, dv] the unnormalised sum
    /// Σ_j exp(s_j − M) v_j, with the running maximum M and denominator L of each head in max and sum. Parts over
    /// disjoint key ranges combine into the whole (<see cref="Combine"/>): flash decoding's split of a long context.
    /// </summary>
    public static void FlashPartial<TSource>(ref TSource source, float* q, int heads, int dk, int dv, float scale, float* o, float* max, float* sum)
        where TSource : struct, ITileSource
    {
        // heads that fill whole vectors (MLA's 16 over the latent stream) go in lanes, as a block's queries do: no
        // horizontal sum per score, and 4 heads x 4 vectors of values per step of the weighted sum
        if (heads % Lanes == 0 && Lanes > 1) { FlashBlock(ref source, q, 1, heads, dk, dv, scale, o, max, sum); return; }
        int T = KvCache.Tile, len = source.Visible(0);
        fixed (float* s = Grow(ref _scores, heads * T))
        {
            // s [heads, T] this tile's scores, then weights; max M and sum L per head
            Begin(o, max, sum, heads, dv);
            for (int j0 = 0; j0 < len; j0 += T)
            {
                int n = Math.Min(T, len - j0);
                var k = source.Keys(j0, n, out int kStride);
                fixed (float* kp = k)
                {
                    Scores(q, heads, dk, kp, n, kStride, scale, s, T);
                    Softmax(s, T, n, max, sum, o, heads, dv);
                    fixed (float* vp = source.Values(j0, n, k, kStride, out int vStride)) Accumulate(s, T, heads, vp, n, vStride, dv, o);
                }
            }
        }
    }

    /// <summary>
    /// The attention output of <paramref name="heads"/> heads from <paramref name="parts"/> partial results over
    /// disjoint key ranges (<see cref="FlashPartial"/>; part p's at o + p·partStride [heads, dv], its M and L at
    /// max/sum + p·heads): with M* = max_p M_p, out_g = Σ_p exp(M_p − M*) o_p / Σ_p exp(M_p − M*) L_p.
    /// </summary>
    public static void Combine(float* o, float* max, float* sum, int parts, int partStride, int heads, int dv, float* output)
    {
        for (int g = 0; g < heads; g++)
        {
            float m = float.NegativeInfinity;
            for (int p = 0; p < parts; p++) m = Math.Max(m, max[p * heads + g]);
            float l = 0;
            var og = new Span<float>(output + g * dv, dv);
            og.Clear();
            for (int p = 0; p < parts; p++)
            {
                float w = MathF.Exp(max[p * heads + g] - m);             // 0 for a part that saw no key (M = −∞)
                if (w == 0) continue;
                l += w * sum[p * heads + g];
                TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(o + p * partStride + g * dv, dv), w, og, og);
            }
            TensorPrimitives.Multiply(og, 1f / l, og);
        }
    }

    /// <summary>
    /// <see cref="Flash"/> for a block of several query rows (a prompt chunk): the same recurrence with the queries in
    /// vector lanes. The block's rows·heads queries are transposed once into qT [dk, cp] (cp: their count rounded up
    /// to whole vectors, padding queries zero), so a tile's scores are a register-blocked product with no horizontal
    /// sums (<see cref="ScoresT"/>: 4 keys × 4 vectors of queries per step, each key value broadcast once for 64
    /// queries at 512 bits) into sT [n, cp], key-major; the softmax runs down the columns (a running maximum and sum
    /// per lane); the weighted sum of values is an outer-product block of 4 queries × 4 vectors of columns
    /// (<see cref="AccumulateT"/>). With one query per lane-row the per-head path spent most of a long prompt's
    /// attention re-reading every query from L2 for every key and reducing each dot product horizontally.
    /// As <see cref="FlashPartial"/>, it leaves o unnormalised with M and L in max and sum (cp floats each).
    /// </summary>
    private static void FlashBlock<TSource>(ref TSource source, float* q, int rows, int heads, int dk, int dv, float scale, float* o,
        float* max, float* sum)
        where TSource : struct, ITileSource
    {
        int T = KvCache.Tile, count = rows * heads, lanes = Lanes, cp = (count + lanes - 1) / lanes * lanes;
        int first = source.Visible(0), len = source.Visible(rows - 1);
        fixed (float* qT = Grow(ref _qT, dk * cp), s = Grow(ref _scores, T * cp), work = Grow(ref _work, cp))
        {
            // qT[c·cp + g] = q[g·dk + c]; the padding queries stay zero (their scores 0, their outputs never written)
            new Span<float>(qT, dk * cp).Clear();
            for (int g = 0; g < count; g++)
                for (int c = 0; c < dk; c++) qT[c * cp + g] = q[g * dk + c];
            new Span<float>(o, count * dv).Clear();
            new Span<float>(max, cp).Fill(float.NegativeInfinity);
            new Span<float>(sum, cp).Clear();
            for (int j0 = 0; j0 < len; j0 += T)
            {
                int n = Math.Min(T, len - j0);
                var k = source.Keys(j0, n, out int kStride);
                fixed (float* kp = k)
                {
                    ScoresT(qT, cp, dk, kp, n, kStride, scale, s);     // sT [n, cp]
                    if (j0 + n > first)                                  // the tile crosses the first row's limit: causal mask
                        for (int i = 0; i < rows; i++)
                            for (int j = Math.Max(0, source.Visible(i) - j0); j < n; j++)
                                new Span<float>(s + j * cp + i * heads, heads).Fill(float.NegativeInfinity);
                    SoftmaxT(s, cp, n, max, sum, work, o, count, dv);
                    fixed (float* vp = source.Values(j0, n, k, kStride, out int vStride)) AccumulateT(s, cp, count, vp, n, vStride, dv, o);
                }
            }
        }
    }

    /// <summary>Float32 lanes of the widest vector path: the multiple <see cref="FlashBlock"/> pads its queries to.</summary>
    internal static int Lanes => Vector512.IsHardwareAccelerated ? W512.Count
        : Vector256.IsHardwareAccelerated ? W256.Count : Vector128.IsHardwareAccelerated ? W128.Count : 1;

    /// <summary>
    /// Block layout (queries in lanes): sT[j·cp + g] = scale · Σ_c qT[c·cp + g] · k[j·kStride + c] for g &lt; cp, j &lt; m,
    /// qT [dk, cp] with cp a multiple of <see cref="Lanes"/>.
    /// </summary>
    public static void ScoresT(float* qT, int cp, int dk, float* k, int m, int kStride, float scale, float* sT)
    {
        if (Vector512.IsHardwareAccelerated && cp % W512.Count == 0) ScoresT<W512, Vector512<float>>(qT, cp, dk, k, m, kStride, scale, sT);
        else if (Vector256.IsHardwareAccelerated && cp % W256.Count == 0) ScoresT<W256, Vector256<float>>(qT, cp, dk, k, m, kStride, scale, sT);
        else if (Vector128.IsHardwareAccelerated && cp % W128.Count == 0) ScoresT<W128, Vector128<float>>(qT, cp, dk, k, m, kStride, scale, sT);
        else ScoresTScalar(qT, cp, dk, k, m, kStride, scale, sT);
    }

    /// <summary>
    /// Block layout: o[g·dv + c] += Σ_j pT[j·cp + g] · v[j·vStride + c] for g &lt; count, c &lt; dv, summed in order of j.
    /// </summary>
    public static void AccumulateT(float* pT, int cp, int count, float* v, int m, int vStride, int dv, float* o)
    {
        if (Vector512.IsHardwareAccelerated && dv >= W512.Count) AccumulateT<W512, Vector512<float>>(pT, cp, count, v, m, vStride, dv, o);
        else if (Vector256.IsHardwareAccelerated && dv >= W256.Count) AccumulateT<W256, Vector256<float>>(pT, cp, count, v, m, vStride, dv, o);
        else if (Vector128.IsHardwareAccelerated && dv >= W128.Count) AccumulateT<W128, Vector128<float>>(pT, cp, count, v, m, vStride, dv, o);
        else AccumulateTScalar(pT, cp, count, v, m, vStride, dv, o);
    }

    /// <summary>
    /// <see cref="Softmax"/> in the block layout, sT [n, cp] key-major: per query lane M' = max(M, max_j sT[j]),
    /// sT ← exp(sT − M') in place, L ← L·exp(M − M') + Σ_j sT[j], o_g rescaled by exp(M_g − M'_g) when its maximum rose.
    /// <paramref name="work"/> holds cp floats (each lane's rescale factor).
    /// </summary>
    public static void SoftmaxT(float* sT, int cp, int n, float* max, float* sum, float* work, float* o, int count, int dv)
    {
        float* alpha = work;
        if (Vector512.IsHardwareAccelerated && cp % W512.Count == 0) SoftmaxT<W512, Vector512<float>>(sT, cp, n, max, sum, alpha);
        else if (Vector256.IsHardwareAccelerated && cp % W256.Count == 0) SoftmaxT<W256, Vector256<float>>(sT, cp, n, max, sum, alpha);
        else if (Vector128.IsHardwareAccelerated && cp % W128.Count == 0) SoftmaxT<W128, Vector128<float>>(sT, cp, n, max, sum, alpha);
        else SoftmaxTScalar(sT, cp, n, max, sum, alpha);
        for (int g = 0; g < count; g++)
            if (alpha[g] != 1f)
            {
                var og = new Span<float>(o + g * dv, dv);
                TensorPrimitives.Multiply(og, alpha[g], og);
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

    [ThreadStatic] private static float[]? _scores, _max, _sum, _qT, _work;

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

    public static void ScoresTScalar(float* qT, int cp, int dk, float* k, int m, int kStride, float scale, float* sT)
    {
        for (int j = 0; j < m; j++)
            for (int g = 0; g < cp; g++)
            {
                float dot = 0;
                for (int c = 0; c < dk; c++) dot += qT[c * cp + g] * k[j * kStride + c];
                sT[j * cp + g] = dot * scale;
            }
    }

    public static void AccumulateTScalar(float* pT, int cp, int count, float* v, int m, int vStride, int dv, float* o)
    {
        for (int g = 0; g < count; g++)
            for (int c = 0; c < dv; c++)
            {
                float acc = o[g * dv + c];
                for (int j = 0; j < m; j++) acc += pT[j * cp + g] * v[j * vStride + c];
                o[g * dv + c] = acc;
            }
    }

    /// <summary><see cref="SoftmaxT"/>'s arithmetic per query lane, with the factor each lane's output is rescaled by in alpha.</summary>
    public static void SoftmaxTScalar(float* sT, int cp, int n, float* max, float* sum, float* alpha)
    {
        for (int g = 0; g < cp; g++)
        {
            float m = max[g];
            for (int j = 0; j < n; j++) m = Math.Max(m, sT[j * cp + g]);
            float a = VectorExp.Exp(max[g] - m), l = sum[g] * a;     // 0 on the first tile (M = −∞)
            for (int j = 0; j < n; j++) l += sT[j * cp + g] = VectorExp.Exp(sT[j * cp + g] - m);
            max[g] = m; sum[g] = l; alpha[g] = a;
        }
    }

    // ---------- vector bodies ----------

    /// <summary>
    /// One vector of query lanes at a time, in registers: the new maximum down the tile's column, the rescale factor,
    /// exp of each score in place and the running sum (summed in order of j); one pass to find the maximum and one to
    /// exponentiate, where the per-row TensorPrimitives calls had cost a fifth of a long prompt's attention tile.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SoftmaxT<TW, TV>(float* sT, int cp, int n, float* max, float* sum, float* alpha)
        where TW : IWidth<TV> where TV : unmanaged
    {
        int L = TW.Count;
        for (int g = 0; g < cp; g += L)
        {
            TV mOld = TW.Load(max + g), m = mOld;
            float* sj = sT + g;
            for (int j = 0; j < n; j++, sj += cp) m = TW.Max(m, TW.Load(sj));
            TV a = TW.Exp(TW.Subtract(mOld, m));                      // 0 on the first tile (M = −∞)
            TV l = TW.Multiply(TW.Load(sum + g), a);
            sj = sT + g;
            for (int j = 0; j < n; j++, sj += cp)
            {
                TV e = TW.Exp(TW.Subtract(TW.Load(sj), m));
                TW.Store(e, sj);
                l = TW.Add(l, e);
            }
            TW.Store(m, max + g); TW.Store(l, sum + g); TW.Store(a, alpha + g);
        }
    }

    /// <summary>
    /// Per 4 keys × 4 vectors of queries: 16 accumulators over c, per step 4 query vectors loaded and each key's value
    /// broadcast (4 + 4 loads for 16 FMAs); fewer query vectors one at a time against the 4 keys; the last keys one at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScoresT<TW, TV>(float* qT, int cp, int dk, float* k, int m, int kStride, float scale, float* sT)
        where TW : IWidth<TV> where TV : unmanaged
    {
        int L = TW.Count;
        var sc = TW.Broadcast(scale);
        int j = 0;
        for (; j + 4 <= m; j += 4)
        {
            float* k0 = k + (long)j * kStride, k1 = k0 + kStride, k2 = k1 + kStride, k3 = k2 + kStride;
            float* s0 = sT + (long)j * cp;
            int g = 0;
            for (; g + 4 * L <= cp; g += 4 * L)
            {
                TV a00 = TW.Zero, a01 = TW.Zero, a02 = TW.Zero, a03 = TW.Zero;
                TV a10 = TW.Zero, a11 = TW.Zero, a12 = TW.Zero, a13 = TW.Zero;
                TV a20 = TW.Zero, a21 = TW.Zero, a22 = TW.Zero, a23 = TW.Zero;
                TV a30 = TW.Zero, a31 = TW.Zero, a32 = TW.Zero, a33 = TW.Zero;
                float* qc = qT + g;
                for (int c = 0; c < dk; c++, qc += cp)
                {
                    TV q0 = TW.Load(qc), q1 = TW.Load(qc + L), q2 = TW.Load(qc + 2 * L), q3 = TW.Load(qc + 3 * L);
                    TV b = TW.Broadcast(k0[c]);
                    a00 = TW.Fma(q0, b, a00); a01 = TW.Fma(q1, b, a01); a02 = TW.Fma(q2, b, a02); a03 = TW.Fma(q3, b, a03);
                    b = TW.Broadcast(k1[c]);
                    a10 = TW.Fma(q0, b, a10); a11 = TW.Fma(q1, b, a11); a12 = TW.Fma(q2, b, a12); a13 = TW.Fma(q3, b, a13);
                    b = TW.Broadcast(k2[c]);
                    a20 = TW.Fma(q0, b, a20); a21 = TW.Fma(q1, b, a21); a22 = TW.Fma(q2, b, a22); a23 = TW.Fma(q3, b, a23);
                    b = TW.Broadcast(k3[c]);
                    a30 = TW.Fma(q0, b, a30); a31 = TW.Fma(q1, b, a31); a32 = TW.Fma(q2, b, a32); a33 = TW.Fma(q3, b, a33);
                }
                float* d = s0 + g;
                TW.Store(TW.Multiply(a00, sc), d); TW.Store(TW.Multiply(a01, sc), d + L); TW.Store(TW.Multiply(a02, sc), d + 2 * L); TW.Store(TW.Multiply(a03, sc), d + 3 * L);
                d += cp;
                TW.Store(TW.Multiply(a10, sc), d); TW.Store(TW.Multiply(a11, sc), d + L); TW.Store(TW.Multiply(a12, sc), d + 2 * L); TW.Store(TW.Multiply(a13, sc), d + 3 * L);
                d += cp;
                TW.Store(TW.Multiply(a20, sc), d); TW.Store(TW.Multiply(a21, sc), d + L); TW.Store(TW.Multiply(a22, sc), d + 2 * L); TW.Store(TW.Multiply(a23, sc), d + 3 * L);
                d += cp;
                TW.Store(TW.Multiply(a30, sc), d); TW.Store(TW.Multiply(a31, sc), d + L); TW.Store(TW.Multiply(a32, sc), d + 2 * L); TW.Store(TW.Multiply(a33, sc), d + 3 * L);
            }
            for (; g < cp; g += L)
            {
                TV a0 = TW.Zero, a1 = TW.Zero, a2 = TW.Zero, a3 = TW.Zero;
                float* qc = qT + g;
                for (int c = 0; c < dk; c++, qc += cp)
                {
                    TV q0 = TW.Load(qc);
                    a0 = TW.Fma(q0, TW.Broadcast(k0[c]), a0); a1 = TW.Fma(q0, TW.Broadcast(k1[c]), a1);
                    a2 = TW.Fma(q0, TW.Broadcast(k2[c]), a2); a3 = TW.Fma(q0, TW.Broadcast(k3[c]), a3);
                }
                float* d = s0 + g;
                TW.Store(TW.Multiply(a0, sc), d); TW.Store(TW.Multiply(a1, sc), d + cp);
                TW.Store(TW.Multiply(a2, sc), d + 2 * cp); TW.Store(TW.Multiply(a3, sc), d + 3 * cp);
            }
        }
        for (; j < m; j++)
        {
            float* kj = k + (long)j * kStride;
            for (int g = 0; g < cp; g += L)
            {
                TV a = TW.Zero;
                float* qc = qT + g;
                for (int c = 0; c < dk; c++, qc += cp) a = TW.Fma(TW.Load(qc), TW.Broadcast(kj[c]), a);
                TW.Store(TW.Multiply(a, sc), sT + (long)j * cp + g);
            }
        }
    }

    /// <summary>
    /// Per 4 queries × 4 vectors of output columns: 16 accumulators held over all m keys, per key 4 value vectors
    /// loaded and each query's weight broadcast (4 + 4 loads for 16 FMAs); the last queries one at a time; then one
    /// vector of columns at a time; tail columns scalar.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateT<TW, TV>(float* pT, int cp, int count, float* v, int m, int vStride, int dv, float* o)
        where TW : IWidth<TV> where TV : unmanaged
    {
        int L = TW.Count, c = 0;
        for (; c + 4 * L <= dv; c += 4 * L)
        {
            int g = 0;
            for (; g + 4 <= count; g += 4)
            {
                float* o0 = o + g * dv + c, o1 = o0 + dv, o2 = o1 + dv, o3 = o2 + dv;
                TV a00 = TW.Load(o0), a01 = TW.Load(o0 + L), a02 = TW.Load(o0 + 2 * L), a03 = TW.Load(o0 + 3 * L);
                TV a10 = TW.Load(o1), a11 = TW.Load(o1 + L), a12 = TW.Load(o1 + 2 * L), a13 = TW.Load(o1 + 3 * L);
                TV a20 = TW.Load(o2), a21 = TW.Load(o2 + L), a22 = TW.Load(o2 + 2 * L), a23 = TW.Load(o2 + 3 * L);
                TV a30 = TW.Load(o3), a31 = TW.Load(o3 + L), a32 = TW.Load(o3 + 2 * L), a33 = TW.Load(o3 + 3 * L);
                float* pj = pT + g, vj = v + c;
                for (int j = 0; j < m; j++, pj += cp, vj += vStride)
                {
                    TV v0 = TW.Load(vj), v1 = TW.Load(vj + L), v2 = TW.Load(vj + 2 * L), v3 = TW.Load(vj + 3 * L);
                    TV b = TW.Broadcast(pj[0]);
                    a00 = TW.Fma(b, v0, a00); a01 = TW.Fma(b, v1, a01); a02 = TW.Fma(b, v2, a02); a03 = TW.Fma(b, v3, a03);
                    b = TW.Broadcast(pj[1]);
                    a10 = TW.Fma(b, v0, a10); a11 = TW.Fma(b, v1, a11); a12 = TW.Fma(b, v2, a12); a13 = TW.Fma(b, v3, a13);
                    b = TW.Broadcast(pj[2]);
                    a20 = TW.Fma(b, v0, a20); a21 = TW.Fma(b, v1, a21); a22 = TW.Fma(b, v2, a22); a23 = TW.Fma(b, v3, a23);
                    b = TW.Broadcast(pj[3]);
                    a30 = TW.Fma(b, v0, a30); a31 = TW.Fma(b, v1, a31); a32 = TW.Fma(b, v2, a32); a33 = TW.Fma(b, v3, a33);
                }
                TW.Store(a00, o0); TW.Store(a01, o0 + L); TW.Store(a02, o0 + 2 * L); TW.Store(a03, o0 + 3 * L);
                TW.Store(a10, o1); TW.Store(a11, o1 + L); TW.Store(a12, o1 + 2 * L); TW.Store(a13, o1 + 3 * L);
                TW.Store(a20, o2); TW.Store(a21, o2 + L); TW.Store(a22, o2 + 2 * L); TW.Store(a23, o2 + 3 * L);
                TW.Store(a30, o3); TW.Store(a31, o3 + L); TW.Store(a32, o3 + 2 * L); TW.Store(a33, o3 + 3 * L);
            }
            for (; g < count; g++)
            {
                float* og = o + g * dv + c;
                TV a0 = TW.Load(og), a1 = TW.Load(og + L), a2 = TW.Load(og + 2 * L), a3 = TW.Load(og + 3 * L);
                float* pj = pT + g, vj = v + c;
                for (int j = 0; j < m; j++, pj += cp, vj += vStride)
                {
                    TV b = TW.Broadcast(pj[0]);
                    a0 = TW.Fma(b, TW.Load(vj), a0); a1 = TW.Fma(b, TW.Load(vj + L), a1);
                    a2 = TW.Fma(b, TW.Load(vj + 2 * L), a2); a3 = TW.Fma(b, TW.Load(vj + 3 * L), a3);
                }
                TW.Store(a0, og); TW.Store(a1, og + L); TW.Store(a2, og + 2 * L); TW.Store(a3, og + 3 * L);
            }
        }
        for (; c + L <= dv; c += L)
            for (int g = 0; g < count; g++)
            {
                float* og = o + g * dv + c;
                TV a = TW.Load(og);
                float* pj = pT + g, vj = v + c;
                for (int j = 0; j < m; j++, pj += cp, vj += vStride) a = TW.Fma(TW.Broadcast(pj[0]), TW.Load(vj), a);
                TW.Store(a, og);
            }
        for (; c < dv; c++)
            for (int g = 0; g < count; g++)
            {
                float acc = o[g * dv + c];
                for (int j = 0; j < m; j++) acc += pT[j * cp + g] * v[(long)j * vStride + c];
                o[g * dv + c] = acc;
            }
    }


    /// <summary>
    /// Two heads × 4 rows at a time: 8 accumulators (independent FMA chains) over the columns, each vector of a row
    /// loaded once for the two heads and each vector of a query once for the 4 rows; then per head the 4 dot
    /// products reduced together (<see cref="IWidth{TVector}.Sum4"/>: one transposing reduction, not four horizontal
    /// sums) and stored as one vector of 4 scores. An odd last head takes 4 rows alone, the last m % 4 rows one at a
    /// time; columns past the last full vector are added in scalar. (A decoding row of the 1.5B distill's group of 6
    /// over an f16 cache, `DeepSeekCpu.Bench attention --decode --keys 256`: before, per row 4 heads with 4 horizontal
    /// sums and scattered scalar stores, this product was 37% of the time.)
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores<TW, TV>(float* q, int heads, int dk, float* k, int m, int kStride, float scale, float* s, int sStride)
        where TW : IWidth<TV> where TV : unmanaged
    {
        int n = TW.Count, full = dk - dk % n, m4 = m - m % 4;
        var sc = Vector128.Create(scale);
        for (int g = 0; g < heads; g += 2)
        {
            bool two = g + 1 < heads;
            float* qa = q + g * dk, qb = two ? qa + dk : qa;
            float* sa = s + g * sStride, sb = two ? sa + sStride : sa;
            for (int j = 0; j < m4; j += 4)
            {
                float* k0 = k + (long)j * kStride, k1 = k0 + kStride, k2 = k1 + kStride, k3 = k2 + kStride;
                TV a0 = TW.Zero, a1 = TW.Zero, a2 = TW.Zero, a3 = TW.Zero, b0 = TW.Zero, b1 = TW.Zero, b2 = TW.Zero, b3 = TW.Zero;
                for (int c = 0; c < full; c += n)
                {
                    TV x0 = TW.Load(k0 + c), x1 = TW.Load(k1 + c), x2 = TW.Load(k2 + c), x3 = TW.Load(k3 + c), qv = TW.Load(qa + c);
                    a0 = TW.Fma(qv, x0, a0); a1 = TW.Fma(qv, x1, a1); a2 = TW.Fma(qv, x2, a2); a3 = TW.Fma(qv, x3, a3);
                    if (two)
                    {
                        qv = TW.Load(qb + c);
                        b0 = TW.Fma(qv, x0, b0); b1 = TW.Fma(qv, x1, b1); b2 = TW.Fma(qv, x2, b2); b3 = TW.Fma(qv, x3, b3);
                    }
                }
                var ta = TW.Sum4(a0, a1, a2, a3);
                var tb = TW.Sum4(b0, b1, b2, b3);
                if (full < dk)
                {
                    ta += Vector128.Create(Tail(qa, k0, full, dk), Tail(qa, k1, full, dk), Tail(qa, k2, full, dk), Tail(qa, k3, full, dk));
                    tb += Vector128.Create(Tail(qb, k0, full, dk), Tail(qb, k1, full, dk), Tail(qb, k2, full, dk), Tail(qb, k3, full, dk));
                }
                (ta * sc).Store(sa + j);
                if (two) (tb * sc).Store(sb + j);
            }
            for (int j = m4; j < m; j++)
            {
                float* kj = k + (long)j * kStride;
                TV a = TW.Zero, b = TW.Zero;
                for (int c = 0; c < full; c += n)
                {
                    var x = TW.Load(kj + c);
                    a = TW.Fma(TW.Load(qa + c), x, a);
                    if (two) b = TW.Fma(TW.Load(qb + c), x, b);
                }
                float ta = TW.Sum(a), tb = TW.Sum(b);
                for (int c = full; c < dk; c++) { ta += qa[c] * kj[c]; tb += qb[c] * kj[c]; }
                sa[j] = ta * scale;
                if (two) sb[j] = tb * scale;
            }
        }
    }

    /// <summary>Σ q[c]·k[c] over the columns [from, to) past the last full vector.</summary>
    private static float Tail(float* q, float* k, int from, int to)
    {
        float t = 0;
        for (int c = from; c < to; c++) t += q[c] * k[c];
        return t;
    }

    /// <summary>
    /// Per vector of output columns: 4 heads' accumulators held in registers over all m rows (each row's vector
    /// loaded once for the 4, each weight broadcast), then stored; the last heads one at a time over 4 vectors of
    /// columns (4 chains; 34 → 44 GFLOP/s in the bench above); tail columns scalar.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Accumulate<TW, TV>(float* p, int pStride, int heads, float* v, int m, int vStride, int dv, float* o)
        where TW : IWidth<TV> where TV : unmanaged
    {
        int n = TW.Count, full = dv - dv % n, g4 = heads - heads % 4;
        // the last heads % 4 heads, one at a time, over 4 vectors of columns: 4 independent FMA chains, as the groups
        // of 4 heads have (one chain per head and vector ran at a quarter of the FMA rate: a GQA group of 6 spent two
        // thirds of this product's time on its last 2 heads)
        int c4 = 0;
        for (; c4 + 4 * n <= full; c4 += 4 * n)
            for (int g = g4; g < heads; g++)
            {
                float* og = o + g * dv + c4, pg = p + g * pStride;
                TV a0 = TW.Load(og), a1 = TW.Load(og + n), a2 = TW.Load(og + 2 * n), a3 = TW.Load(og + 3 * n);
                for (int j = 0; j < m; j++)
                {
                    float* vj = v + (long)j * vStride + c4;
                    var w = TW.Broadcast(pg[j]);
                    a0 = TW.Fma(w, TW.Load(vj), a0); a1 = TW.Fma(w, TW.Load(vj + n), a1);
                    a2 = TW.Fma(w, TW.Load(vj + 2 * n), a2); a3 = TW.Fma(w, TW.Load(vj + 3 * n), a3);
                }
                TW.Store(a0, og); TW.Store(a1, og + n); TW.Store(a2, og + 2 * n); TW.Store(a3, og + 3 * n);
            }
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
            if (c < c4) continue;   // the last heads' columns before c4 were done 4 vectors at a time above
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
