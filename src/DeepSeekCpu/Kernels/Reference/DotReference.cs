using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.Reference;

/// <summary>
/// Scalar dot products of one weight row with quantized activations: the specification every SIMD body is tested
/// against on identical inputs (ggml-cpu/quants.c <c>ggml_vec_dot_*_generic</c>). Integer sums are exact; only the
/// float accumulation order differs between bodies.
/// </summary>
internal static unsafe partial class DotReference
{
    public static float Q8_0(byte* w, ActQ8* a)
    {
        var blk = (BlockQ8_0*)w;
        float sum = 0;
        for (int b = 0; b < a->Cols / 32; b++, blk++)
        {
            int isum = 0;
            for (int j = 0; j < 32; j++) isum += blk->Qs[j] * a->Q[32 * b + j];
            sum += (float)blk->D * a->D[b] * isum;
        }
        return sum;
    }

    public static float Q4_0(byte* w, ActQ8* a)
    {
        var blk = (BlockQ4_0*)w;
        float sum = 0;
        for (int b = 0; b < a->Cols / 32; b++, blk++)
        {
            sbyte* x = a->Q + 32 * b;
            int isum = 0;
            for (int j = 0; j < 16; j++) isum += ((blk->Qs[j] & 0xF) - 8) * x[j] + ((blk->Qs[j] >> 4) - 8) * x[j + 16];
            sum += (float)blk->D * a->D[b] * isum;
        }
        return sum;
    }

    // x = d q + m:  Σ x·y = d·dy·Σ q qy + m·(dy Σ qy)
    public static float Q4_1(byte* w, ActQ8* a)
    {
        var blk = (BlockQ4_1*)w;
        float sum = 0;
        for (int b = 0; b < a->Cols / 32; b++, blk++)
        {
            sbyte* x = a->Q + 32 * b;
            int isum = 0;
            for (int j = 0; j < 16; j++) isum += (blk->Qs[j] & 0xF) * x[j] + (blk->Qs[j] >> 4) * x[j + 16];
            sum += (float)blk->D * a->D[b] * isum + (float)blk->M * a->S[b];
        }
        return sum;
    }

    public static float Q5_0(byte* w, ActQ8* a)
    {
        var blk = (BlockQ5_0*)w;
        float sum = 0;
        for (int b = 0; b < a->Cols / 32; b++, blk++)
        {
            sbyte* x = a->Q + 32 * b;
            uint qh = *(uint*)blk->Qh;
            int isum = 0;
            for (int j = 0; j < 16; j++)
            {
                int q0 = ((blk->Qs[j] & 0xF) | (int)(((qh >> j) << 4) & 0x10)) - 16;
                int q1 = ((blk->Qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10)) - 16;
                isum += q0 * x[j] + q1 * x[j + 16];
            }
            sum += (float)blk->D * a->D[b] * isum;
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

    // Σ over sub-blocks j of d·sc_j·Σ q·qy − dmin·m_j·Σ qy, with Σ qy from the Q8_K block sums.
    public static float Q4_K(byte* w, ActQ8* a)
    {
        var blk = (BlockQ4_K*)w;
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++, blk++)
        {
            sbyte* x = a->Q + 256 * b;
            short* bs = a->BSums + 16 * b;
            int sumi = 0, summ = 0;
            for (int g = 0; g < 4; g++)
            {
                byte* q = blk->Qs + 32 * g;
                KQuant.ScaleMin(2 * g, blk->Scales, out int sc1, out int m1);
                KQuant.ScaleMin(2 * g + 1, blk->Scales, out int sc2, out int m2);
                int s1 = 0, s2 = 0;
                for (int l = 0; l < 32; l++)
                {
                    s1 += (q[l] & 0xF) * x[64 * g + l];
                    s2 += (q[l] >> 4) * x[64 * g + 32 + l];
                }
                sumi += sc1 * s1 + sc2 * s2;
                summ += m1 * (bs[4 * g] + bs[4 * g + 1]) + m2 * (bs[4 * g + 2] + bs[4 * g + 3]);
            }
            sum += (float)blk->D * a->D[b] * sumi - (float)blk->DMin * a->D[b] * summ;
        }
        return sum;
    }

    public static float Q5_K(byte* w, ActQ8* a)
    {
        var blk = (BlockQ5_K*)w;
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++, blk++)
        {
            sbyte* x = a->Q + 256 * b;
            short* bs = a->BSums + 16 * b;
            int sumi = 0, summ = 0;
            for (int g = 0; g < 4; g++)
            {
                byte* q = blk->Qs + 32 * g;
                KQuant.ScaleMin(2 * g, blk->Scales, out int sc1, out int m1);
                KQuant.ScaleMin(2 * g + 1, blk->Scales, out int sc2, out int m2);
                int u1 = 1 << (2 * g), u2 = 2 << (2 * g);
                int s1 = 0, s2 = 0;
                for (int l = 0; l < 32; l++)
                {
                    s1 += ((q[l] & 0xF) + ((blk->Qh[l] & u1) != 0 ? 16 : 0)) * x[64 * g + l];
                    s2 += ((q[l] >> 4) + ((blk->Qh[l] & u2) != 0 ? 16 : 0)) * x[64 * g + 32 + l];
                }
                sumi += sc1 * s1 + sc2 * s2;
                summ += m1 * (bs[4 * g] + bs[4 * g + 1]) + m2 * (bs[4 * g + 2] + bs[4 * g + 3]);
            }
            sum += (float)blk->D * a->D[b] * sumi - (float)blk->DMin * a->D[b] * summ;
        }
        return sum;
    }

    public static float Q6_K(byte* w, ActQ8* a)
    {
        var blk = (BlockQ6_K*)w;
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++, blk++)
        {
            sbyte* x = a->Q + 256 * b;
            int sumi = 0;
            for (int half = 0; half < 2; half++)
            {
                byte* ql = blk->Ql + 64 * half;
                byte* qh = blk->Qh + 32 * half;
                sbyte* sc = blk->Scales + 8 * half;
                sbyte* xh = x + 128 * half;
                for (int l = 0; l < 32; l++)
                {
                    int s = l / 16;
                    int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    sumi += sc[s] * q1 * xh[l] + sc[s + 2] * q2 * xh[l + 32] + sc[s + 4] * q3 * xh[l + 64] + sc[s + 6] * q4 * xh[l + 96];
                }
            }
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
