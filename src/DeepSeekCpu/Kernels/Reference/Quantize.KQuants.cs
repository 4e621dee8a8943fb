using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

// Quantizers of Q5_1, Q2_K, Q3_K, IQ4_NL and IQ4_XS, following ggml-quants.c (llama.cpp 3f545be) step by step as
// llama-quantize runs them without an importance matrix: quantize_row_q5_1_ref, quantize_row_q2_K_ref,
// quantize_row_q3_K_ref, and quantize_iq4_nl / quantize_iq4_xs (quantize_row_iq4_nl_impl with 7 trial scales each
// side). The tests compare the bytes with ggml's own output (tests/DeepSeekCpu.Kernels.Tests/Data/ggml).
internal static unsafe partial class Quantize
{
    // quantize_row_q5_1_ref: d = (max - min) / 31, m = min, q = (uint8)((x - min)/d + 0.5); fifth bits into qh
    public static void Q5_1(float* x, BlockQ5_1* y)
    {
        float id = ScaleAndMin(x, 31, &y->D, &y->M, out float min);
        uint qh = 0;
        for (int j = 0; j < 16; j++)
        {
            int q0 = (byte)((x[j] - min) * id + 0.5f), q1 = (byte)((x[j + 16] - min) * id + 0.5f);
            y->Qs[j] = (byte)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= (uint)((q0 & 0x10) >> 4) << j;
            qh |= (uint)((q1 & 0x10) >> 4) << (j + 16);
        }
        *(uint*)y->Qh = qh;
    }

    // quantize_row_q2_K_ref: per 16 a scale and min by make_qkx2_quants (levels 0..3, weights |x|, absolute error),
    // both quantized to 4 bits against the super-block maxima, then the levels re-derived with the stored scales.
    public static void Q2_K(float* x, BlockQ2_K* y)
    {
        byte* L = stackalloc byte[256];
        float* mins = stackalloc float[16];
        float* scales = stackalloc float[16];
        float maxScale = SubBlockScalesMins(x, 16, 3, -0.5f, 15, L, scales, mins, out float maxMin);
        *y = default;
        if (maxScale > 0)
        {
            float iscale = 15f / maxScale;
            for (int j = 0; j < 16; j++) y->Scales[j] = (byte)NearestInt(iscale * scales[j]);
            y->D = (Half)(maxScale / 15f);
        }
        if (maxMin > 0)
        {
            float iscale = 15f / maxMin;
            for (int j = 0; j < 16; j++) y->Scales[j] |= (byte)(NearestInt(iscale * mins[j]) << 4);
            y->DMin = (Half)(maxMin / 15f);
        }
        for (int j = 0; j < 16; j++)
        {
            float d = (float)y->D * (y->Scales[j] & 0xF);
            if (d == 0) continue;
            float dm = (float)y->DMin * (y->Scales[j] >> 4);
            for (int i = 0; i < 16; i++) L[16 * j + i] = (byte)Math.Clamp(NearestInt((x[16 * j + i] + dm) / d), 0, 3);
        }
        PackTwoBits(L, y->Qs);
    }

    // quantize_row_q3_K_ref: per 16 a signed scale by make_q3_quants (levels -4..3), scales quantized to 6 bits
    // (stored + 32) against the one of largest magnitude, levels re-derived; high bits to hmask.
    public static void Q3_K(float* x, BlockQ3_K* y)
    {
        sbyte* L = stackalloc sbyte[256];
        float* scales = stackalloc float[16];
        float maxScale = 0, amax = 0;
        for (int j = 0; j < 16; j++)
        {
            scales[j] = MakeQ3Quants(16, 4, x + 16 * j, L + 16 * j);
            if (MathF.Abs(scales[j]) > amax) { amax = MathF.Abs(scales[j]); maxScale = scales[j]; }
        }
        *y = default;
        if (maxScale != 0)
        {
            float iscale = -32f / maxScale;
            for (int j = 0; j < 16; j++)
            {
                int l = Math.Clamp((int)(sbyte)NearestInt(iscale * scales[j]), -32, 31) + 32;
                if (j < 8) y->Scales[j] = (byte)(l & 0xF);
                else y->Scales[j - 8] |= (byte)((l & 0xF) << 4);
                y->Scales[j % 4 + 8] |= (byte)((l >> 4) << (2 * (j / 4)));
            }
            y->D = (Half)(1 / iscale);
        }
        sbyte* sc = stackalloc sbyte[16];
        Q3KScales.Unpack(y->Scales, sc);
        for (int j = 0; j < 16; j++)
        {
            float d = (float)y->D * sc[j];
            if (d == 0) continue;
            for (int i = 0; i < 16; i++) L[16 * j + i] = (sbyte)(Math.Clamp(NearestInt(x[16 * j + i] / d), -4, 3) + 4);
        }
        // the high bit of element e goes to bit e / 32 of hmask[e % 32]
        for (int e = 0; e < 256; e++)
            if (L[e] > 3) { y->HMask[e % 32] |= (byte)(1 << (e / 32)); L[e] -= 4; }
        PackTwoBits((byte*)L, y->Qs);
    }

    /// <summary>Q2_K/Q3_K low bits: element 32j + l of each half of 128 at bits 2j of byte l (see BlockQ2_K).</summary>
    private static void PackTwoBits(byte* L, byte* qs)
    {
        for (int j = 0; j < 256; j += 128)
            for (int l = 0; l < 32; l++)
                qs[j / 4 + l] = (byte)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }

    /// <summary>
    /// make_q3_quants with do_rmse: symmetric levels in [-nmax, nmax-1] (stored + nmax) from nmax/max, then up to 5
    /// passes that move single levels where that improves the weighted (x²) least-squares fit; returns the scale.
    /// </summary>
    internal static float MakeQ3Quants(int n, int nmax, float* x, sbyte* L)
    {
        float max = LargestMagnitude(x, n);
        if (MathF.Abs(max) < GroupMaxEps)
        {
            new Span<sbyte>(L, n).Clear();
            return 0f;
        }
        float iscale = -nmax / max, sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++)
        {
            L[i] = (sbyte)Math.Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * L[i];
            suml2 += w * L[i] * L[i];
        }
        for (int itry = 0; itry < 5; itry++)
        {
            int changed = 0;
            for (int i = 0; i < n; i++)
            {
                float w = x[i] * x[i];
                float slx = sumlx - w * x[i] * L[i];
                if (slx <= 0) continue;
                float sl2 = suml2 - w * L[i] * L[i];
                int newL = Math.Clamp(NearestInt(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (newL == L[i]) continue;
                slx += w * x[i] * newL;
                sl2 += w * newL * newL;
                if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2)
                {
                    L[i] = (sbyte)newL; sumlx = slx; suml2 = sl2;
                    changed++;
                }
            }
            if (changed == 0) break;
        }
        for (int i = 0; i < n; i++) L[i] += (sbyte)nmax;
        return suml2 > 0 ? sumlx / suml2 : 0f;
    }

    // quantize_iq4_nl: one block of 32 is its own super-block (scale stored as is)
    public static void IQ4_NL(float* x, BlockIQ4_NL* y)
    {
        float scale;
        y->D = IQ4Blocks(x, 1, &scale, y->Qs, null, null);
    }

    // quantize_iq4_xs: 8 sub-blocks of 32 with 6-bit scales against d = -max_scale / 32
    public static void IQ4_XS(float* x, BlockIQ4_XS* y)
    {
        float* scales = stackalloc float[8];
        y->D = IQ4Blocks(x, 8, scales, y->Qs, &y->ScalesH, y->ScalesL);
    }

    /// <summary>
    /// quantize_row_iq4_nl_impl without an importance matrix (weights x²) and ntry = 7: per sub-block of 32 the scale
    /// d = -max/127, refined by weighted least squares over 15 trial scales (itry - 127)/max; with several sub-blocks,
    /// their scales quantized to 6 bits against the super-block d and the indices re-derived. Returns the stored d.
    /// </summary>
    private static Half IQ4Blocks(float* x, int blocks, float* scales, byte* q4, ushort* scalesH, byte* scalesL)
    {
        const int ntry = 7;
        var values = IQ4NL.Values;
        byte* L = stackalloc byte[256];
        new Span<byte>(q4, 16 * blocks).Clear();
        float maxScale = 0, amaxScale = 0;
        for (int ib = 0; ib < blocks; ib++)
        {
            float* xb = x + 32 * ib;
            byte* Lb = L + 32 * ib;
            float max = LargestMagnitude(xb, 32);
            if (MathF.Abs(max) < GroupMaxEps) { scales[ib] = 0; continue; }
            float d = -max / values[0], id = 1 / d;
            float sumqx = 0, sumq2 = 0;
            for (int j = 0; j < 32; j++)
            {
                int l = BestIndex(values, id * xb[j]);
                Lb[j] = (byte)l;
                float q = values[l], w = xb[j] * xb[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            d = sumq2 > 0 ? sumqx / sumq2 : 0f;
            float best = d * sumqx;
            for (int itry = -ntry; itry <= ntry; itry++)
            {
                id = (itry + values[0]) / max;
                sumqx = sumq2 = 0;
                for (int j = 0; j < 32; j++)
                {
                    float q = values[BestIndex(values, id * xb[j])], w = xb[j] * xb[j];
                    sumqx += w * q * xb[j];
                    sumq2 += w * q * q;
                }
                if (sumq2 > 0 && sumqx * sumqx > best * sumq2) { d = sumqx / sumq2; best = d * sumqx; }
            }
            scales[ib] = d;
            if (MathF.Abs(d) > amaxScale) { amaxScale = MathF.Abs(d); maxScale = d; }
        }
        Half stored;
        if (blocks > 1)
        {
            *scalesH = 0;
            float d = -maxScale / 32, id = d != 0 ? 1 / d : 0f;
            stored = (Half)d;
            for (int ib = 0; ib < blocks; ib++)
            {
                int l = Math.Clamp(NearestInt(id * scales[ib]), -32, 31);
                float dl = d * l, idl = dl != 0 ? 1 / dl : 0f;
                for (int j = 0; j < 32; j++) L[32 * ib + j] = (byte)BestIndex(values, idl * x[32 * ib + j]);
                l += 32;
                if (ib % 2 == 0) scalesL[ib / 2] = (byte)(l & 0xF);
                else scalesL[ib / 2] |= (byte)((l & 0xF) << 4);
                *scalesH |= (ushort)((l >> 4) << (2 * ib));
            }
        }
        else
        {
            stored = (Half)scales[0];
            float id = scales[0] != 0 ? 1 / scales[0] : 0;
            for (int j = 0; j < 32; j++) L[j] = (byte)BestIndex(values, id * x[j]);
        }
        for (int i = 0; i < blocks; i++)
            for (int j = 0; j < 16; j++) q4[16 * i + j] = (byte)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
        return stored;
    }

    /// <summary>The value of largest magnitude, sign kept (the first of equal magnitudes, as ggml's loops keep it).</summary>
    private static float LargestMagnitude(float* x, int n)
    {
        float amax = 0, max = 0;
        for (int i = 0; i < n; i++)
            if (MathF.Abs(x[i]) > amax) { amax = MathF.Abs(x[i]); max = x[i]; }
        return max;
    }

    /// <summary>best_index_int8: the index of the grid value nearest to <paramref name="x"/> (binary search; ties go up).</summary>
    private static int BestIndex(ReadOnlySpan<sbyte> values, float x)
    {
        int n = values.Length;
        if (x <= values[0]) return 0;
        if (x >= values[n - 1]) return n - 1;
        int lo = 0, hi = n - 1;
        while (hi - lo > 1)
        {
            int mid = (lo + hi) / 2;
            if (x < values[mid]) hi = mid; else lo = mid;
        }
        return x - values[hi - 1] < values[hi] - x ? hi - 1 : hi;
    }
}
