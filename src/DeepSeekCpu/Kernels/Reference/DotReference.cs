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

    public static float Q8_K(byte* w, ActQ8* a) => Blocks256<Q8_KQuant>(w, a);

    /// <summary>Σ over 256-element super-blocks of d·dy·Σ q·qy, q the block's integer quant times its sub-block scale
    /// (<see cref="IScaledQuant256"/>); the formats with mins (Q2_K, Q4_K, Q5_K) or packed scales to unpack once per
    /// block (Q3_K) keep loops of their own.</summary>
    private static float Blocks256<T>(byte* w, ActQ8* a) where T : IScaledQuant256
    {
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++, w += T.BlockBytes)
        {
            int isum = 0;
            for (int i = 0; i < 256; i++) isum += T.Quant(w, i) * a->Q[256 * b + i];
            sum += T.D(w) * a->D[b] * isum;
        }
        return sum;
    }

    /// <summary>A 256-element format element by element: quant i (0..255) times its sub-block's integer scale, and the
    /// block's float scale d.</summary>
    private interface IScaledQuant256
    {
        static abstract int BlockBytes { get; }
        static abstract float D(byte* blk);
        static abstract int Quant(byte* blk, int i);
    }

    // dequantize_row_q8_K: x = d·q
    private readonly struct Q8_KQuant : IScaledQuant256
    {
        public static int BlockBytes => sizeof(BlockQ8_K);
        public static float D(byte* blk) => ((BlockQ8_K*)blk)->D;
        public static int Quant(byte* blk, int i) => ((BlockQ8_K*)blk)->Qs[i];
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

    public static float Q6_K(byte* w, ActQ8* a) => Blocks256<Q6_KQuant>(w, a);

    // x = d·scale_{i/16}·(q_i − 32) (KQuant.Q6Quant: q − 32)
    private readonly struct Q6_KQuant : IScaledQuant256
    {
        public static int BlockBytes => sizeof(BlockQ6_K);
        public static float D(byte* blk) => (float)((BlockQ6_K*)blk)->D;
        public static int Quant(byte* blk, int i) => ((BlockQ6_K*)blk)->Scales[i / 16] * KQuant.Q6Quant((BlockQ6_K*)blk, i);
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
