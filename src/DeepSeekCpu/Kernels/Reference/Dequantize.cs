using System.Numerics.Tensors;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Expands stored weights to float32. The plain scalar code here is the specification of each block layout
/// (ggml-common.h for the structs, ggml-quants.c <c>dequantize_row_*</c> for the arithmetic); the SIMD kernels are
/// tested against it. Nothing here is meant to be fast.
/// </summary>
public static unsafe partial class Dequantize
{
    /// <summary>Dequantizes <paramref name="dst"/>.Length elements starting at <paramref name="src"/> (whole blocks).</summary>
    public static void Row(DType type, byte* src, Span<float> dst)
    {
        int n = dst.Length;
        if (n % type.BlockSize() != 0) throw new ArgumentException($"{n} elements is not a whole number of {type} blocks");
        switch (type)
        {
            case DType.F32:
                new ReadOnlySpan<float>(src, n).CopyTo(dst);
                break;
            case DType.F16:
                TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(src, n), dst);
                break;
            case DType.BF16:
                // bfloat16 is the upper half of an IEEE float32.
                var b = new ReadOnlySpan<ushort>(src, n);
                for (int i = 0; i < n; i++) dst[i] = Bf16ToFloat(b[i]);
                break;
            case DType.F8_E4M3:
                for (int i = 0; i < n; i++) dst[i] = Fp8E4M3ToFloat(src[i]);
                break;
            case DType.Q8_0:
                for (int i = 0; i < n / 32; i++) Q8_0((BlockQ8_0*)src + i, dst.Slice(i * 32, 32));
                break;
            case DType.Q4_0:
                for (int i = 0; i < n / 32; i++) Q4_0((BlockQ4_0*)src + i, dst.Slice(i * 32, 32));
                break;
            case DType.Q4_1:
                for (int i = 0; i < n / 32; i++) Q4_1((BlockQ4_1*)src + i, dst.Slice(i * 32, 32));
                break;
            case DType.Q5_0:
                for (int i = 0; i < n / 32; i++) Q5_0((BlockQ5_0*)src + i, dst.Slice(i * 32, 32));
                break;
            case DType.Q8_K:
                for (int i = 0; i < n / 256; i++) Q8_K((BlockQ8_K*)src + i, dst.Slice(i * 256, 256));
                break;
            case DType.Q4_K:
                for (int i = 0; i < n / 256; i++) Q4_K((BlockQ4_K*)src + i, dst.Slice(i * 256, 256));
                break;
            case DType.Q5_K:
                for (int i = 0; i < n / 256; i++) Q5_K((BlockQ5_K*)src + i, dst.Slice(i * 256, 256));
                break;
            case DType.Q6_K:
                for (int i = 0; i < n / 256; i++) Q6_K((BlockQ6_K*)src + i, dst.Slice(i * 256, 256));
                break;
            case DType.Q5_1: ForBlocks<BlockQ5_1>(src, dst, 32, &Q5_1); break;
            case DType.Q2_K: ForBlocks<BlockQ2_K>(src, dst, 256, &Q2_K); break;
            case DType.Q3_K: ForBlocks<BlockQ3_K>(src, dst, 256, &Q3_K); break;
            case DType.IQ4_NL: ForBlocks<BlockIQ4_NL>(src, dst, 32, &IQ4_NL); break;
            case DType.IQ4_XS: ForBlocks<BlockIQ4_XS>(src, dst, 256, &IQ4_XS); break;
            default:
                throw new NotSupportedException($"dequantize {type}");
        }
    }

    public static float Bf16ToFloat(ushort v) => BitConverter.Int32BitsToSingle(v << 16);

    /// <summary>
    /// float8_e4m3fn: 1 sign, 4 exponent bits (bias 7), 3 mantissa bits; no infinities; 0x7F/0xFF are NaN
    /// (OCP 8-bit floating point spec, "E4M3").
    /// </summary>
    public static float Fp8E4M3ToFloat(byte v)
    {
        int sign = v >> 7, exp = (v >> 3) & 0xF, man = v & 7;
        float mag;
        if (exp == 0xF && man == 7) return float.NaN;
        if (exp == 0) mag = man / 8f * (1f / 64f);           // subnormal: 2^-6 * m/8
        else mag = (1 + man / 8f) * MathF.Pow(2, exp - 7);
        return sign != 0 ? -mag : mag;
    }

    // dequantize_row_q8_0: x = d * q
    public static void Q8_0(BlockQ8_0* b, Span<float> y)
    {
        float d = (float)b->D;
        for (int j = 0; j < 32; j++) y[j] = d * b->Qs[j];
    }

    // dequantize_row_q4_0: element j is the low nibble of qs[j], element j+16 the high nibble; x = d * (q - 8)
    public static void Q4_0(BlockQ4_0* b, Span<float> y)
    {
        float d = (float)b->D;
        for (int j = 0; j < 16; j++)
        {
            y[j] = d * ((b->Qs[j] & 0x0F) - 8);
            y[j + 16] = d * ((b->Qs[j] >> 4) - 8);
        }
    }

    // dequantize_row_q4_1: x = d * q + m
    public static void Q4_1(BlockQ4_1* b, Span<float> y)
    {
        float d = (float)b->D, m = (float)b->M;
        for (int j = 0; j < 16; j++)
        {
            y[j] = d * (b->Qs[j] & 0x0F) + m;
            y[j + 16] = d * (b->Qs[j] >> 4) + m;
        }
    }

    // dequantize_row_q5_0: the fifth bit of element j is bit j of qh (little-endian u32); x = d * (q - 16)
    public static void Q5_0(BlockQ5_0* b, Span<float> y)
    {
        float d = (float)b->D;
        uint qh = *(uint*)b->Qh;
        for (int j = 0; j < 16; j++)
        {
            int h0 = (int)((qh >> j) << 4) & 0x10;
            int h1 = (int)(qh >> (j + 12)) & 0x10;
            y[j] = d * (((b->Qs[j] & 0x0F) | h0) - 16);
            y[j + 16] = d * (((b->Qs[j] >> 4) | h1) - 16);
        }
    }

    // dequantize_row_q8_K: x = d * q
    public static void Q8_K(BlockQ8_K* b, Span<float> y)
    {
        for (int j = 0; j < 256; j++) y[j] = b->D * b->Qs[j];
    }

    // dequantize_row_q4_K: per 64 elements, two sub-blocks share 32 bytes (low / high nibbles)
    public static void Q4_K(BlockQ4_K* b, Span<float> y)
    {
        float d = (float)b->D, dmin = (float)b->DMin;
        byte* q = b->Qs;
        for (int g = 0; g < 4; g++, q += 32)
        {
            KQuant.ScaleMin(2 * g, b->Scales, out int sc1, out int m1);
            KQuant.ScaleMin(2 * g + 1, b->Scales, out int sc2, out int m2);
            float d1 = d * sc1, mm1 = dmin * m1, d2 = d * sc2, mm2 = dmin * m2;
            for (int l = 0; l < 32; l++) y[64 * g + l] = d1 * (q[l] & 0xF) - mm1;
            for (int l = 0; l < 32; l++) y[64 * g + 32 + l] = d2 * (q[l] >> 4) - mm2;
        }
    }

    // dequantize_row_q5_K: as Q4_K with a fifth bit from qh (bit 2g for the low nibbles, 2g+1 for the high)
    public static void Q5_K(BlockQ5_K* b, Span<float> y)
    {
        float d = (float)b->D, dmin = (float)b->DMin;
        byte* ql = b->Qs;
        byte* qh = b->Qh;
        for (int g = 0; g < 4; g++, ql += 32)
        {
            KQuant.ScaleMin(2 * g, b->Scales, out int sc1, out int m1);
            KQuant.ScaleMin(2 * g + 1, b->Scales, out int sc2, out int m2);
            float d1 = d * sc1, mm1 = dmin * m1, d2 = d * sc2, mm2 = dmin * m2;
            int u1 = 1 << (2 * g), u2 = 2 << (2 * g);
            for (int l = 0; l < 32; l++) y[64 * g + l] = d1 * ((ql[l] & 0xF) + ((qh[l] & u1) != 0 ? 16 : 0)) - mm1;
            for (int l = 0; l < 32; l++) y[64 * g + 32 + l] = d2 * ((ql[l] >> 4) + ((qh[l] & u2) != 0 ? 16 : 0)) - mm2;
        }
    }

    // dequantize_row_q6_K: see BlockQ6_K for the bit positions
    public static void Q6_K(BlockQ6_K* b, Span<float> y)
    {
        float d = (float)b->D;
        byte* ql = b->Ql;
        byte* qh = b->Qh;
        sbyte* sc = b->Scales;
        for (int half = 0; half < 2; half++, ql += 64, qh += 32, sc += 8)
        {
            int o = 128 * half;
            for (int l = 0; l < 32; l++)
            {
                int s = l / 16;
                int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[o + l] = d * sc[s] * q1;
                y[o + l + 32] = d * sc[s + 2] * q2;
                y[o + l + 64] = d * sc[s + 4] * q3;
                y[o + l + 96] = d * sc[s + 6] * q4;
            }
        }
    }

    /// <summary>Dequantizes a whole matrix (all rows, FP8 block scales applied).</summary>
    public static float[] Matrix(WeightMatrix w)
    {
        var result = new float[(long)w.Rows * w.Cols];
        for (int r = 0; r < w.Rows; r++) RowOf(w, r, result.AsSpan(r * w.Cols, w.Cols));
        return result;
    }

    /// <summary>Row <paramref name="r"/> of <paramref name="w"/> as float32, including FP8 block scales.</summary>
    public static void RowOf(WeightMatrix w, int r, Span<float> dst)
    {
        Row(w.Type, w.Row(r), dst);
        if (w.Type == DType.F8_E4M3)
        {
            float* s = w.BlockScales + (r / WeightMatrix.Fp8BlockSize) * w.ScaleCols;
            for (int c0 = 0, b = 0; c0 < w.Cols; c0 += WeightMatrix.Fp8BlockSize, b++)
            {
                var seg = dst.Slice(c0, Math.Min(WeightMatrix.Fp8BlockSize, w.Cols - c0));
                TensorPrimitives.Multiply(seg, s[b], seg);
            }
        }
    }
}
