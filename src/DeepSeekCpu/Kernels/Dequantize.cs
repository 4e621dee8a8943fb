using System.Buffers.Binary;
using System.Numerics.Tensors;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Expands stored weights to float32. The plain scalar code here is the specification of each block layout
/// (ggml-common.h, ggml-quants.c <c>dequantize_row_*</c>); SIMD dot kernels are tested against it.
/// </summary>
public static unsafe class Dequantize
{
    /// <summary>Dequantizes <paramref name="dst"/>.Length elements starting at <paramref name="src"/> (whole blocks).</summary>
    public static void Row(DType type, byte* src, Span<float> dst)
    {
        int n = dst.Length;
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
                for (int i = 0; i < n; i++) dst[i] = BitConverter.Int32BitsToSingle(b[i] << 16);
                break;
            case DType.F8_E4M3:
                for (int i = 0; i < n; i++) dst[i] = Fp8E4M3ToFloat(src[i]);
                break;
            case DType.Q8_0:
                // block_q8_0 { ggml_half d; int8_t qs[32]; }  x = d * q
                for (int blk = 0; blk < n / 32; blk++)
                {
                    byte* p = src + blk * 34;
                    float d = (float)BitConverter.UInt16BitsToHalf(*(ushort*)p);
                    for (int j = 0; j < 32; j++) dst[blk * 32 + j] = d * (sbyte)p[2 + j];
                }
                break;
            case DType.Q4_0:
                // block_q4_0 { ggml_half d; uint8_t qs[16]; } element j < 16 is the low nibble of qs[j],
                // element j + 16 the high nibble; x = d * (q - 8)
                for (int blk = 0; blk < n / 32; blk++)
                {
                    byte* p = src + blk * 18;
                    float d = (float)BitConverter.UInt16BitsToHalf(*(ushort*)p);
                    for (int j = 0; j < 16; j++)
                    {
                        dst[blk * 32 + j] = d * ((p[2 + j] & 0x0F) - 8);
                        dst[blk * 32 + j + 16] = d * ((p[2 + j] >> 4) - 8);
                    }
                }
                break;
            default:
                throw new NotSupportedException($"dequantize {type}");
        }
    }

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
