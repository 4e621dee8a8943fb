using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.Reference;

/// <summary>
/// Scalar dot products of one weight row with quantized activations: the specification every SIMD body is tested
/// against on identical inputs (ggml-cpu/quants.c <c>ggml_vec_dot_*_generic</c>). Integer sums are exact; only the
/// float accumulation order differs between bodies.
/// </summary>
internal static unsafe partial class DotReference
{
    public static float Q8_0(byte* w, ActQ8* a) => Blocks32<Dequantize.Q8_0Quant>(w, a, sizeof(BlockQ8_0));

    public static float Q4_0(byte* w, ActQ8* a) => Blocks32<Dequantize.Q4_0Quant>(w, a, sizeof(BlockQ4_0));

    // x = d q + m:  Σ x·y = d·dy·Σ q qy + m·(dy Σ qy)
    public static float Q4_1(byte* w, ActQ8* a) => Blocks32<Dequantize.Q4_1Quant>(w, a, sizeof(BlockQ4_1));

    public static float Q5_0(byte* w, ActQ8* a) => Blocks32<Dequantize.Q5_0Quant>(w, a, sizeof(BlockQ5_0));

    /// <summary>Σ over 32-element blocks of d·dy·Σ q·qy (+ m·dy·Σ qy for Q4_1), q the block's integer quants
    /// (<see cref="Dequantize.IQuant32"/>); d is the first field of every such block, m the second.</summary>
    private static float Blocks32<T>(byte* w, ActQ8* a, int blockBytes) where T : Dequantize.IQuant32
    {
        float sum = 0;
        for (int b = 0; b < a->Cols / 32; b++, w += blockBytes)
        {
            int isum = 0;
            for (int j = 0; j < 32; j++) isum += T.Quant(w, j) * a->Q[32 * b + j];
            sum += (float)((Half*)w)[0] * a->D[b] * isum + (T.HasMin ? (float)((Half*)w)[1] * a->S[b] : 0);
        }
        return sum;
    }

    public static float Q8_K(byte* w, ActQ8* a)
    {
        var blk = (BlockQ8_K*)w;
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++, blk++)
        {
            int isum = 0;
            for (int j = 0; j < 256; j++) isum += blk->Qs[j] * a->Q[256 * b + j];
            sum += blk->D * a->D[b] * isum;
        }
        return sum;
    }

    public static float Q4_K(byte* w, ActQ8* a) => K4(w, a, sizeof(BlockQ4_K), 16, false);

    public static float Q5_K(byte* w, ActQ8* a) => K4(w, a, sizeof(BlockQ5_K), 48, true);

    // Σ over sub-blocks j of d·sc_j·Σ q·qy − dmin·m_j·Σ qy, with Σ qy from the Q8_K block sums; Q4_K and Q5_K share
    // D, DMin and Scales, and Q5_K adds the fifth bits qh (KQuant.K4Quant).
    private static float K4(byte* w, ActQ8* a, int blockBytes, int qsOffset, bool hasQh)
    {
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++, w += blockBytes)
        {
            var blk = (BlockQ4_K*)w;
            byte* qs = w + qsOffset, qh = hasQh ? ((BlockQ5_K*)w)->Qh : null;
            int sumi = 0, summ = 0;
            for (int j = 0; j < 8; j++)
            {
                KQuant.ScaleMin(j, blk->Scales, out int sc, out int m);
                int s = 0;
                for (int l = 0; l < 32; l++) s += KQuant.K4Quant(qs, qh, j, l) * a->Q[256 * b + 32 * j + l];
                sumi += sc * s;
                summ += m * (a->BSums[16 * b + 2 * j] + a->BSums[16 * b + 2 * j + 1]);
            }
            sum += (float)blk->D * a->D[b] * sumi - (float)blk->DMin * a->D[b] * summ;
        }
        return sum;
    }

    // Σ over the 256 quants of scale_{i/16}·(q_i − 32)·qy_i (KQuant.Q6Quant: q − 32)
    public static float Q6_K(byte* w, ActQ8* a)
    {
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++)
        {
            var blk = (BlockQ6_K*)w + b;
            int sumi = 0;
            for (int i = 0; i < 256; i++) sumi += blk->Scales[i / 16] * KQuant.Q6Quant(blk, i) * a->Q[256 * b + i];
            sum += (float)blk->D * a->D[b] * sumi;
        }
        return sum;
    }

    /// <summary>Plain float dot of a dequantized row with float activations (float formats, and the GEMM reference).</summary>
    public static float Float(WeightMatrix w, int r, float* x, Span<float> scratch)
    {
        Dequantize.RowOf(w, r, scratch);
        float sum = 0;
        for (int i = 0; i < w.Cols; i++) sum += scratch[i] * x[i];
        return sum;
    }
}
