using System.Numerics.Tensors;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Expands stored weights to float32. The plain scalar code here is the specification of each block layout
/// (ggml-common.h for the structs, ggml-quants.c <c>dequantize_row_*</c> for the arithmetic); the SIMD kernels are
/// tested against it. Nothing here is meant to be fast.
/// </summary>
internal static unsafe partial class Dequantize
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
            case DType.IQ2_XXS or DType.IQ2_XS or DType.IQ2_S or DType.IQ3_XXS or DType.IQ3_S or DType.IQ1_S or DType.IQ1_M:
                IQuantRow(type, src, dst);
                break;
            default:
                var spec = BlockSpecs.For(type);
                if (spec.Dequantize == null) throw new NotSupportedException($"dequantize {type}");
                int per = type.BlockSize(), bytes = type.BlockBytes();
                for (int i = 0; i < n / per; i++) spec.Dequantize(src + (long)i * bytes, dst.Slice(i * per, per));
                break;
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

    /// <summary>
    /// The same 32-element formats element by element, for the reference dot products: quant j (0..31) as an integer
    /// q, x = d·q (+ m where <see cref="HasMin"/>), d and m the block's first fields. (The dequantizers above write each
    /// layout out whole: the float GEMM decodes its weight tiles with them, and per element they ran 1.1-1.4x slower.)
    /// </summary>
    internal interface IQuant32
    {
        static abstract bool HasMin { get; }
        static abstract int Quant(byte* blk, int j);
    }

    internal readonly struct Q8_0Quant : IQuant32
    {
        public static bool HasMin => false;
        public static int Quant(byte* blk, int j) => ((BlockQ8_0*)blk)->Qs[j];
    }

    internal readonly struct Q4_0Quant : IQuant32
    {
        public static bool HasMin => false;
        public static int Quant(byte* blk, int j) => Nibble(((BlockQ4_0*)blk)->Qs, j) - 8;
    }

    internal readonly struct Q4_1Quant : IQuant32
    {
        public static bool HasMin => true;
        public static int Quant(byte* blk, int j) => Nibble(((BlockQ4_1*)blk)->Qs, j);
    }

    internal readonly struct Q5_0Quant : IQuant32
    {
        public static bool HasMin => false;
        public static int Quant(byte* blk, int j) =>
            (Nibble(((BlockQ5_0*)blk)->Qs, j) | (int)(((*(uint*)((BlockQ5_0*)blk)->Qh >> j) & 1) << 4)) - 16;
    }

    private static int Nibble(byte* qs, int j) => j < 16 ? qs[j] & 0x0F : qs[j - 16] >> 4;

    // dequantize_row_q8_K: x = d * q
    public static void Q8_K(BlockQ8_K* b, Span<float> y)
    {
        for (int j = 0; j < 256; j++) y[j] = b->D * b->Qs[j];
    }

    // dequantize_row_q4_K / q5_K: x = d·sc_j·q − dmin·m_j for quant q of sub-block j (KQuant.K4Quant)
    public static void Q4_K(BlockQ4_K* b, Span<float> y) => K4(b, b->Qs, null, y);

    public static void Q5_K(BlockQ5_K* b, Span<float> y) => K4((BlockQ4_K*)b, b->Qs, b->Qh, y);   // same D, DMin, Scales

    private static void K4(BlockQ4_K* b, byte* qs, byte* qh, Span<float> y)
    {
        float d = (float)b->D, dmin = (float)b->DMin;
        for (int j = 0; j < 8; j++)
        {
            KQuant.ScaleMin(j, b->Scales, out int sc, out int m);
            float dj = d * sc, mj = dmin * m;
            for (int l = 0; l < 32; l++) y[32 * j + l] = dj * KQuant.K4Quant(qs, qh, j, l) - mj;
        }
    }

    // dequantize_row_q6_K: x = d·scales[i/16]·(q − 32)
    public static void Q6_K(BlockQ6_K* b, Span<float> y)
    {
        float d = (float)b->D;
        for (int i = 0; i < 256; i++) y[i] = d * b->Scales[i / 16] * KQuant.Q6Quant(b, i);
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
