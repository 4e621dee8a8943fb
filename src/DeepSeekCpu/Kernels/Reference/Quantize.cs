using System.Runtime.CompilerServices;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Reference quantizers: float32 rows to GGUF blocks, following llama.cpp's <c>quantize_row_*_ref</c>
/// (ggml/src/ggml-quants.c) step by step, including its rounding (<c>nearest_int</c> is round-half-to-even,
/// <c>roundf</c> rounds half away from zero) and its search for K-quant scales (<c>make_qkx2_quants</c>,
/// <c>make_qx_quants</c>), so the bytes should be what llama.cpp writes without an importance matrix (tests check
/// hand-computed Q8_0 and Q4_0 bytes; the K-quants only by round-trip budgets, not against llama.cpp output).
/// The parallel drivers over whole matrices (<see cref="Matrix"/>, <see cref="RowsInto"/>) are in Kernels/QuantizeMatrix.cs.
/// </summary>
internal static unsafe partial class Quantize
{
    /// <summary>Types <see cref="Row"/> and <see cref="Matrix"/> can produce.</summary>
    public static bool CanQuantizeTo(DType t) => t is DType.F32 or DType.F16 or DType.BF16 || BlockSpecs.For(t).Quantize != null;

    /// <summary>Quantizes <paramref name="src"/> (a whole number of blocks) into <paramref name="dst"/> (exactly its byte size).</summary>
    public static void Row(DType type, ReadOnlySpan<float> src, Span<byte> dst)
    {
        long bytes = type.ByteCount(src.Length);
        if (dst.Length < bytes) throw new ArgumentException($"{type}: {src.Length} values need {bytes} bytes, got {dst.Length}");
        fixed (float* x = src)
        fixed (byte* y = dst)
        {
            int n = src.Length;
            switch (type)
            {
                case DType.F32: src.CopyTo(new Span<float>(y, n)); break;
                case DType.F16: for (int i = 0; i < n; i++) ((Half*)y)[i] = (Half)x[i]; break;
                case DType.BF16: for (int i = 0; i < n; i++) ((ushort*)y)[i] = FloatToBf16(x[i]); break;
                default:
                    var spec = BlockSpecs.For(type);
                    if (spec.Quantize == null) throw new NotSupportedException($"quantize to {type}");
                    int per = type.BlockSize(), size = type.BlockBytes();
                    for (int i = 0; i < n / per; i++) spec.Quantize(x + (long)per * i, y + (long)size * i);
                    break;
            }
        }
    }

    /// <summary>ggml_compute_fp32_to_bf16: round to nearest even; NaN stays a quiet NaN.</summary>
    public static ushort FloatToBf16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (ushort)((u >> 16) | 64);
        return (ushort)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
    }

    /// <summary>ggml's nearest_int (adds 1.5·2^23 and reads the mantissa): round half to even.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int NearestInt(float f) => (int)MathF.Round(f, MidpointRounding.ToEven);

    private const float GroupMaxEps = 1e-15f;

    // quantize_row_q8_0_ref: d = max|x| / 127, q = roundf(x / d)
    public static void Q8_0(float* x, BlockQ8_0* y)
    {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = MathF.Max(amax, MathF.Abs(x[j]));
        float d = amax / 127;
        float id = d != 0 ? 1 / d : 0;
        y->D = (Half)d;
        for (int j = 0; j < 32; j++) y->Qs[j] = (sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero);
    }

    // quantize_row_q4_0_ref: d = max / -8 (max = the value of largest magnitude, sign kept), q = min(15, (int8)(x/d + 8.5))
    public static void Q4_0(float* x, BlockQ4_0* y)
    {
        float d = SignedMax(x, 32) / -8;
        float id = d != 0 ? 1 / d : 0;
        y->D = (Half)d;
        for (int j = 0; j < 16; j++) y->Qs[j] = (byte)(Offset(x[j] * id, 8, 15) | (Offset(x[j + 16] * id, 8, 15) << 4));
    }

    /// <summary>The value of largest magnitude among x[0..n), sign kept (the first one on ties), as ggml's reference
    /// quantizers search it.</summary>
    private static float SignedMax(float* x, int n)
    {
        float amax = 0, max = 0;
        for (int j = 0; j < n; j++)
            if (amax < MathF.Abs(x[j])) { amax = MathF.Abs(x[j]); max = x[j]; }
        return max;
    }

    /// <summary>The scale and min of the asymmetric 32-blocks (Q4_1, Q5_1): d = (max - min) / top and m = min, stored as
    /// halves; returns 1/d (0 for a constant block) and the unrounded min, with which ggml computes the quants.</summary>
    private static float ScaleAndMin(float* x, int top, Half* d, Half* m, out float min)
    {
        min = float.MaxValue;
        float max = -float.MaxValue;
        for (int j = 0; j < 32; j++) { min = MathF.Min(min, x[j]); max = MathF.Max(max, x[j]); }
        float scale = (max - min) / top;
        *d = (Half)scale;
        *m = (Half)min;
        return scale != 0 ? 1 / scale : 0;
    }

    /// <summary>min(top, (int8)(v + offset + 0.5)): ggml's rounding of a scaled value to an unsigned quant.</summary>
    private static int Offset(float v, int offset, int top) => Math.Min(top, (int)(sbyte)(int)(v + (offset + 0.5f)));

    // quantize_row_q4_1_ref: d = (max - min) / 15, m = min, q = min(15, (int8)((x - min)/d + 0.5))
    public static void Q4_1(float* x, BlockQ4_1* y)
    {
        float id = ScaleAndMin(x, 15, &y->D, &y->M, out float min);
        for (int j = 0; j < 16; j++)
        {
            int q0 = Math.Min(15, (int)(sbyte)(int)((x[j] - min) * id + 0.5f));
            int q1 = Math.Min(15, (int)(sbyte)(int)((x[j + 16] - min) * id + 0.5f));
            y->Qs[j] = (byte)(q0 | (q1 << 4));
        }
    }

    // quantize_row_q5_0_ref: d = max / -16, q = min(31, (int8)(x/d + 16.5)); fifth bits gathered into qh
    public static void Q5_0(float* x, BlockQ5_0* y)
    {
        float d = SignedMax(x, 32) / -16;
        float id = d != 0 ? 1 / d : 0;
        y->D = (Half)d;
        uint qh = 0;
        for (int j = 0; j < 16; j++)
        {
            int q0 = Offset(x[j] * id, 16, 31), q1 = Offset(x[j + 16] * id, 16, 31);
            y->Qs[j] = (byte)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= (uint)((q0 & 0x10) >> 4) << j;
            qh |= (uint)((q1 & 0x10) >> 4) << (j + 16);
        }
        *(uint*)y->Qh = qh;
    }

    // quantize_row_q8_K_ref: iscale = -127 / max (max signed), q = min(127, nearest_int(iscale x)), d = 1/iscale
    public static void Q8_K(float* x, BlockQ8_K* y)
    {
        float amax = 0, max = 0;
        for (int j = 0; j < 256; j++)
            if (MathF.Abs(x[j]) > amax) { amax = MathF.Abs(x[j]); max = x[j]; }
        if (amax == 0)
        {
            *y = default;
            return;
        }
        float iscale = -127f / max;
        for (int j = 0; j < 256; j++) y->Qs[j] = (sbyte)Math.Min(127, NearestInt(iscale * x[j]));
        for (int j = 0; j < 16; j++)
        {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += y->Qs[16 * j + i];
            y->BSums[j] = (short)sum;
        }
        y->D = 1 / iscale;
    }

    // quantize_row_q4_K_ref
    public static void Q4_K(float* x, BlockQ4_K* y)
    {
        byte* L = stackalloc byte[256];
        *y = default;
        y->D = KScalesAndLevels(x, 15, -1f, 20, y->Scales, L, out y->DMin);
        byte* q = y->Qs;
        for (int j = 0; j < 256; j += 64, q += 32)
            for (int l = 0; l < 32; l++) q[l] = (byte)(L[j + l] | (L[j + l + 32] << 4));
    }

    // quantize_row_q5_K_ref
    public static void Q5_K(float* x, BlockQ5_K* y)
    {
        byte* L = stackalloc byte[256];
        *y = default;
        y->D = KScalesAndLevels(x, 31, -0.5f, 15, y->Scales, L, out y->DMin);
        byte* qh = y->Qh;
        byte* ql = y->Qs;
        int m1 = 1, m2 = 2;
        for (int n = 0; n < 256; n += 64, ql += 32, m1 <<= 2, m2 <<= 2)
        {
            for (int j = 0; j < 32; j++)
            {
                int l1 = L[n + j], l2 = L[n + j + 32];
                if (l1 > 15) { l1 -= 16; qh[j] |= (byte)m1; }
                if (l2 > 15) { l2 -= 16; qh[j] |= (byte)m2; }
                ql[j] = (byte)(l1 | (l2 << 4));
            }
        }
    }

    /// <summary>
    /// The part quantize_row_q4_K_ref and quantize_row_q5_K_ref share: per 32-value sub-block a scale and min by
    /// make_qkx2_quants (levels 0..<paramref name="nmax"/>), the 6-bit packing of all eight against the super-block
    /// d and dmin, and the levels requantized with the packed values. Writes the packed scales and the levels
    /// <paramref name="L"/>[256]; returns d (dmin through <paramref name="dmin"/>).
    /// </summary>
    private static Half KScalesAndLevels(float* x, int nmax, float rmin, int nstep, byte* packedScales, byte* L, out Half dmin)
    {
        float* mins = stackalloc float[8];
        float* scales = stackalloc float[8];
        float maxScale = SubBlockScalesMins(x, 32, nmax, rmin, nstep, L, scales, mins, out float maxMin);
        PackScalesMins(scales, mins, maxScale, maxMin, packedScales);
        var d = (Half)(maxScale / 63f);
        dmin = (Half)(maxMin / 63f);
        RequantizeWithPackedScales(x, packedScales, (float)d, (float)dmin, nmax, L);
        return d;
    }

    // quantize_row_q6_K_ref
    public static void Q6_K(float* x, BlockQ6_K* y)
    {
        sbyte* L = stackalloc sbyte[256];
        float* scales = stackalloc float[16];
        float maxScale = 0, maxAbsScale = 0;
        for (int ib = 0; ib < 16; ib++)
        {
            float scale = MakeQxQuants(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
            if (MathF.Abs(scale) > maxAbsScale) { maxAbsScale = MathF.Abs(scale); maxScale = scale; }
        }
        *y = default;
        if (maxAbsScale < GroupMaxEps) return; // all zero (d = 0)
        float iscale = -128f / maxScale;
        y->D = (Half)(1 / iscale);
        for (int ib = 0; ib < 16; ib++) y->Scales[ib] = (sbyte)Math.Min(127, NearestInt(iscale * scales[ib]));
        for (int j = 0; j < 16; j++)
        {
            float d = (float)y->D * y->Scales[j];
            if (d == 0) continue; // keeps make_qx_quants' levels, as llama.cpp does
            for (int i = 0; i < 16; i++)
            {
                int l = Math.Clamp(NearestInt(x[16 * j + i] / d), -32, 31);
                L[16 * j + i] = (sbyte)(l + 32);
            }
        }
        byte* ql = y->Ql;
        byte* qh = y->Qh;
        for (int j = 0; j < 256; j += 128, ql += 64, qh += 32)
        {
            for (int l = 0; l < 32; l++)
            {
                int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = (byte)(q1 | (q3 << 4));
                ql[l + 32] = (byte)(q2 | (q4 << 4));
                qh[l] = (byte)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
        }
    }

    /// <summary>
    /// make_qkx2_quants over each sub-block of <paramref name="len"/> values of a 256-value super-block, as
    /// quantize_row_q2_K_ref (16 of 16, weights |x|, mean absolute error) and quantize_row_q4_K_ref/q5_K_ref (8 of 32,
    /// weights <see cref="SubBlockWeights"/>, squared error) run it: writes each sub-block's scale, min and levels
    /// (<paramref name="L"/>[256]); returns the largest scale, the largest min through <paramref name="maxMin"/>.
    /// </summary>
    private static float SubBlockScalesMins(float* x, int len, int nmax, float rmin, int nstep, byte* L, float* scales,
        float* mins, out float maxMin)
    {
        bool q2K = len == 16;
        byte* laux = stackalloc byte[32];
        float* weights = stackalloc float[32];
        float maxScale = 0;
        maxMin = 0;
        for (int j = 0; j < 256 / len; j++)
        {
            float* xj = x + len * j;
            if (q2K) for (int l = 0; l < 16; l++) weights[l] = MathF.Abs(xj[l]);
            else SubBlockWeights(xj, weights);
            scales[j] = MakeQkx2Quants(len, nmax, xj, weights, L + len * j, out mins[j], laux, rmin, 0.1f, nstep, useMad: q2K);
            maxScale = MathF.Max(maxScale, scales[j]);
            maxMin = MathF.Max(maxMin, mins[j]);
        }
        return maxScale;
    }

    // Q4_K/Q5_K: importance of each element of a sub-block of 32 = rms of the sub-block + |x|.
    private static void SubBlockWeights(float* x, float* weights)
    {
        float sumX2 = 0;
        for (int l = 0; l < 32; l++) sumX2 += x[l] * x[l];
        float avX = MathF.Sqrt(sumX2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = avX + MathF.Abs(x[l]);
    }

    // Quantizes the 8 sub-block scales and mins to 6 bits against the super-block maxima and packs them
    // (the inverse of KQuant.ScaleMin).
    private static void PackScalesMins(float* scales, float* mins, float maxScale, float maxMin, byte* packed)
    {
        float invScale = maxScale > 0 ? 63f / maxScale : 0f;
        float invMin = maxMin > 0 ? 63f / maxMin : 0f;
        for (int j = 0; j < 8; j++)
        {
            int ls = Math.Min(63, (int)(byte)NearestInt(invScale * scales[j]));
            int lm = Math.Min(63, (int)(byte)NearestInt(invMin * mins[j]));
            if (j < 4)
            {
                packed[j] = (byte)ls;
                packed[j + 4] = (byte)lm;
            }
            else
            {
                packed[j + 4] = (byte)((ls & 0xF) | ((lm & 0xF) << 4));
                packed[j - 4] |= (byte)((ls >> 4) << 6);
                packed[j] |= (byte)((lm >> 4) << 6);
            }
        }
    }

    // With the final (6-bit, half-precision) scales, re-derive each level: l = nearest_int((x + dmin m) / (d sc)).
    private static void RequantizeWithPackedScales(float* x, byte* packed, float d, float dmin, int nmax, byte* L)
    {
        for (int j = 0; j < 8; j++)
        {
            KQuant.ScaleMin(j, packed, out int sc, out int m);
            float dj = d * sc;
            if (dj == 0) continue;
            float dm = dmin * m;
            for (int i = 0; i < 32; i++) L[32 * j + i] = (byte)Math.Clamp(NearestInt((x[32 * j + i] + dm) / dj), 0, nmax);
        }
    }

    /// <summary>
    /// make_qkx2_quants: levels L in [0, nmax] with x ≈ scale·L − min, minimising the weighted squared error (absolute
    /// error with <paramref name="useMad"/>, as Q2_K asks) over nstep+1 trial scales (rmin + rdelta·i + nmax)/(max − min), each refined by weighted least squares.
    /// Returns the scale; <paramref name="theMin"/> is the (positive) offset subtracted.
    /// </summary>
    internal static float MakeQkx2Quants(int n, int nmax, float* x, float* weights, byte* L, out float theMin, byte* laux,
        float rmin, float rdelta, int nstep, bool useMad = false)
    {
        float min = x[0], max = x[0];
        float sumW = weights[0], sumX = sumW * x[0];
        for (int i = 1; i < n; i++)
        {
            if (x[i] < min) min = x[i];
            if (x[i] > max) max = x[i];
            float w = weights[i];
            sumW += w;
            sumX += w * x[i];
        }
        if (min > 0) min = 0;
        if (max == min)
        {
            for (int i = 0; i < n; i++) L[i] = 0;
            theMin = -min;
            return 0f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestError = 0;
        for (int i = 0; i < n; i++)
        {
            int l = Math.Clamp(NearestInt(iscale * (x[i] - min)), 0, nmax);
            L[i] = (byte)l;
            float diff = scale * L[i] + min - x[i];
            bestError += useMad ? weights[i] * MathF.Abs(diff) : weights[i] * diff * diff;
        }
        for (int step = 0; step <= nstep; step++)
        {
            iscale = (rmin + rdelta * step + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXL = 0;
            for (int i = 0; i < n; i++)
            {
                int l = Math.Clamp(NearestInt(iscale * (x[i] - min)), 0, nmax);
                laux[i] = (byte)l;
                float w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXL += w * l * x[i];
            }
            float D = sumW * sumL2 - sumL * sumL;
            if (D > 0)
            {
                float thisScale = (sumW * sumXL - sumX * sumL) / D;
                float thisMin = (sumL2 * sumX - sumL * sumXL) / D;
                if (thisMin > 0)
                {
                    thisMin = 0;
                    thisScale = sumXL / sumL2;
                }
                float curError = 0;
                for (int i = 0; i < n; i++)
                {
                    float diff = thisScale * laux[i] + thisMin - x[i];
                    curError += useMad ? weights[i] * MathF.Abs(diff) : weights[i] * diff * diff;
                }
                if (curError < bestError)
                {
                    for (int i = 0; i < n; i++) L[i] = laux[i];
                    bestError = curError;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin = -min;
        return scale;
    }

    /// <summary>
    /// make_qx_quants with rmse_type 1 (weights x²) and no importance: symmetric levels in [-nmax, nmax-1] stored
    /// as L + nmax; tries 18 scales around nmax/max and keeps the best weighted least-squares fit.
    /// </summary>
    internal static float MakeQxQuants(int n, int nmax, float* x, sbyte* L)
    {
        float max = 0, amax = 0;
        for (int i = 0; i < n; i++)
            if (MathF.Abs(x[i]) > amax) { amax = MathF.Abs(x[i]); max = x[i]; }
        if (amax < GroupMaxEps)
        {
            for (int i = 0; i < n; i++) L[i] = 0;
            return 0f;
        }
        float iscale = -nmax / max;
        float sumLX = 0, sumL2 = 0;
        for (int i = 0; i < n; i++)
        {
            int l = Math.Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
            L[i] = (sbyte)(l + nmax);
            float w = x[i] * x[i];
            sumLX += w * x[i] * l;
            sumL2 += w * l * l;
        }
        float scale = sumL2 != 0 ? sumLX / sumL2 : 0f;
        float best = scale * sumLX;
        for (int step = -9; step <= 9; step++)
        {
            if (step == 0) continue;
            iscale = -(nmax + 0.1f * step) / max;
            sumLX = sumL2 = 0;
            for (int i = 0; i < n; i++)
            {
                int l = Math.Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
                float w = x[i] * x[i];
                sumLX += w * x[i] * l;
                sumL2 += w * l * l;
            }
            if (sumL2 > 0 && sumLX * sumLX > best * sumL2)
            {
                for (int i = 0; i < n; i++) L[i] = (sbyte)(nmax + Math.Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1));
                scale = sumLX / sumL2;
                best = scale * sumLX;
            }
        }
        return scale;
    }
}
