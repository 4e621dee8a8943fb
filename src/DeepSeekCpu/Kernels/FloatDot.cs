using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Dot products of one row of a float-like weight format (F32, F16, BF16, FP8 E4M3) with float32 activations.
/// Decoding happens in registers: BF16 is the upper half of a float32; FP8 E4M3 is rebuilt with integer operations:
/// its 7 magnitude bits go to float32 bit 20 (exponent at bit 23, mantissa's top 3 bits below) and the exponent is
/// rebiased from 7 to 127 by an integer add; subnormal codes (exponent 0) are m · 2^-9, converted from the integer
/// (no float subnormals anywhere: they cost microcode assists on this CPU); the sign goes to bit 31 and the NaN codes
/// 0x7F/0xFF are selected explicitly. Bodies exist per vector width: 512 (AVX-512), 256 (AVX2),
/// 128 (NEON), scalar (reference). FP8 <paramref name="scales"/> are the row's 128-column block scales.
/// </summary>
internal static unsafe class FloatDot
{
    /// <summary>(127 − 7) &lt;&lt; 23: moves a normal E4M3 exponent (bias 7), placed at float32 bit 23, to bias 127.</summary>
    private const uint RebiasE4M3 = 120u << 23;
    private const float Pow2_m9 = 1f / 512; // subnormal E4M3: m · 2^-6 / 8

    public static float F32(byte* w, float* x, int cols, float* scales) =>
        TensorPrimitives.Dot(new ReadOnlySpan<float>(w, cols), new ReadOnlySpan<float>(x, cols));

    public static float F16(byte* w, float* x, int cols, float* scales)
    {
        // TensorPrimitives converts Half with SIMD on every ISA; go through a small L1-resident buffer.
        float* buf = stackalloc float[512];
        float sum = 0;
        for (int c = 0; c < cols; c += 512)
        {
            int len = Math.Min(512, cols - c);
            var f = new Span<float>(buf, len);
            TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)w + c, len), f);
            sum += TensorPrimitives.Dot(f, new ReadOnlySpan<float>(x + c, len));
        }
        return sum;
    }

    // ---------- scalar reference ----------

    public static float Bf16Scalar(byte* w, float* x, int cols, float* scales)
    {
        float sum = 0;
        for (int i = 0; i < cols; i++) sum += Dequantize.Bf16ToFloat(((ushort*)w)[i]) * x[i];
        return sum;
    }

    public static float Fp8Scalar(byte* w, float* x, int cols, float* scales)
    {
        float sum = 0;
        for (int c0 = 0; c0 < cols; c0 += 128)
        {
            float part = 0;
            for (int i = c0; i < Math.Min(cols, c0 + 128); i++) part += Dequantize.Fp8E4M3ToFloat(w[i]) * x[i];
            sum += part * scales[c0 / 128];
        }
        return sum;
    }

    // ---------- 512-bit ----------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Bf16V512(byte* w, float* x, int cols, float* scales)
    {
        ushort* p = (ushort*)w;
        // Four independent FMA chains: with fewer the loop waits on FMA latency instead of memory.
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        int i = 0;
        for (; i + 64 <= cols; i += 64)
        {
            var v = Vector512.Load(p + i);
            var u = Vector512.Load(p + i + 32);
            acc0 = Vector512.FusedMultiplyAdd(Vector512.ShiftLeft(Vector512.WidenLower(v), 16).AsSingle(), Vector512.Load(x + i), acc0);
            acc1 = Vector512.FusedMultiplyAdd(Vector512.ShiftLeft(Vector512.WidenUpper(v), 16).AsSingle(), Vector512.Load(x + i + 16), acc1);
            acc2 = Vector512.FusedMultiplyAdd(Vector512.ShiftLeft(Vector512.WidenLower(u), 16).AsSingle(), Vector512.Load(x + i + 32), acc2);
            acc3 = Vector512.FusedMultiplyAdd(Vector512.ShiftLeft(Vector512.WidenUpper(u), 16).AsSingle(), Vector512.Load(x + i + 48), acc3);
        }
        for (; i + 32 <= cols; i += 32)
        {
            var v = Vector512.Load(p + i);
            acc0 = Vector512.FusedMultiplyAdd(Vector512.ShiftLeft(Vector512.WidenLower(v), 16).AsSingle(), Vector512.Load(x + i), acc0);
            acc1 = Vector512.FusedMultiplyAdd(Vector512.ShiftLeft(Vector512.WidenUpper(v), 16).AsSingle(), Vector512.Load(x + i + 16), acc1);
        }
        float sum = Vector512.Sum((acc0 + acc1) + (acc2 + acc3));
        for (; i < cols; i++) sum += Dequantize.Bf16ToFloat(p[i]) * x[i];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Fp8V512(Vector512<uint> t)
    {
        var magBits = t & Vector512.Create(0x7Fu);
        var normal = Vector512.ShiftLeft(magBits, 20) + Vector512.Create(RebiasE4M3);
        var subnormal = Vector512.ConvertToSingle(magBits.AsInt32()) * Vector512.Create(Pow2_m9);
        var mag = Vector512.ConditionalSelect(Vector512.LessThan(magBits, Vector512.Create(8u)).AsSingle(), subnormal, normal.AsSingle());
        var v = (mag.AsUInt32() | Vector512.ShiftLeft(t & Vector512.Create(0x80u), 24)).AsSingle();
        return Vector512.ConditionalSelect(Vector512.Equals(magBits, Vector512.Create(0x7Fu)).AsSingle(), Vector512.Create(float.NaN), v);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Fp8V512(byte* w, float* x, int cols, float* scales)
    {
        var acc = Vector512<float>.Zero;
        float tail = 0;
        for (int c0 = 0; c0 < cols; c0 += 128)
        {
            int end = Math.Min(cols, c0 + 128), i = c0;
            var part = Vector512<float>.Zero;
            for (; i + 64 <= end; i += 64)
            {
                var b = Vector512.Load(w + i);
                var s0 = Vector512.WidenLower(b);
                var s1 = Vector512.WidenUpper(b);
                part = Vector512.FusedMultiplyAdd(Fp8V512(Vector512.WidenLower(s0)), Vector512.Load(x + i), part);
                part = Vector512.FusedMultiplyAdd(Fp8V512(Vector512.WidenUpper(s0)), Vector512.Load(x + i + 16), part);
                part = Vector512.FusedMultiplyAdd(Fp8V512(Vector512.WidenLower(s1)), Vector512.Load(x + i + 32), part);
                part = Vector512.FusedMultiplyAdd(Fp8V512(Vector512.WidenUpper(s1)), Vector512.Load(x + i + 48), part);
            }
            float scale = scales[c0 / 128];
            acc = Vector512.FusedMultiplyAdd(part, Vector512.Create(scale), acc);
            float t = 0;
            for (; i < end; i++) t += Dequantize.Fp8E4M3ToFloat(w[i]) * x[i];
            tail += t * scale;
        }
        return Vector512.Sum(acc) + tail;
    }

    // ---------- 256-bit ----------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Bf16V256(byte* w, float* x, int cols, float* scales)
    {
        ushort* p = (ushort*)w;
        Vector256<float> acc0 = default, acc1 = default;
        int i = 0;
        for (; i + 16 <= cols; i += 16)
        {
            var v = Vector256.Load(p + i);
            acc0 = Vector256.FusedMultiplyAdd(Vector256.ShiftLeft(Vector256.WidenLower(v), 16).AsSingle(), Vector256.Load(x + i), acc0);
            acc1 = Vector256.FusedMultiplyAdd(Vector256.ShiftLeft(Vector256.WidenUpper(v), 16).AsSingle(), Vector256.Load(x + i + 8), acc1);
        }
        float sum = Vector256.Sum(acc0 + acc1);
        for (; i < cols; i++) sum += Dequantize.Bf16ToFloat(p[i]) * x[i];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Fp8V256(Vector256<uint> t)
    {
        var magBits = t & Vector256.Create(0x7Fu);
        var normal = Vector256.ShiftLeft(magBits, 20) + Vector256.Create(RebiasE4M3);
        var subnormal = Vector256.ConvertToSingle(magBits.AsInt32()) * Vector256.Create(Pow2_m9);
        var mag = Vector256.ConditionalSelect(Vector256.LessThan(magBits, Vector256.Create(8u)).AsSingle(), subnormal, normal.AsSingle());
        var v = (mag.AsUInt32() | Vector256.ShiftLeft(t & Vector256.Create(0x80u), 24)).AsSingle();
        return Vector256.ConditionalSelect(Vector256.Equals(magBits, Vector256.Create(0x7Fu)).AsSingle(), Vector256.Create(float.NaN), v);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Fp8V256(byte* w, float* x, int cols, float* scales)
    {
        var acc = Vector256<float>.Zero;
        float tail = 0;
        for (int c0 = 0; c0 < cols; c0 += 128)
        {
            int end = Math.Min(cols, c0 + 128), i = c0;
            var part = Vector256<float>.Zero;
            for (; i + 32 <= end; i += 32)
            {
                var b = Vector256.Load(w + i);
                var s0 = Vector256.WidenLower(b);
                var s1 = Vector256.WidenUpper(b);
                part = Vector256.FusedMultiplyAdd(Fp8V256(Vector256.WidenLower(s0)), Vector256.Load(x + i), part);
                part = Vector256.FusedMultiplyAdd(Fp8V256(Vector256.WidenUpper(s0)), Vector256.Load(x + i + 8), part);
                part = Vector256.FusedMultiplyAdd(Fp8V256(Vector256.WidenLower(s1)), Vector256.Load(x + i + 16), part);
                part = Vector256.FusedMultiplyAdd(Fp8V256(Vector256.WidenUpper(s1)), Vector256.Load(x + i + 24), part);
            }
            float scale = scales[c0 / 128];
            acc = Vector256.FusedMultiplyAdd(part, Vector256.Create(scale), acc);
            float t = 0;
            for (; i < end; i++) t += Dequantize.Fp8E4M3ToFloat(w[i]) * x[i];
            tail += t * scale;
        }
        return Vector256.Sum(acc) + tail;
    }

    // ---------- 128-bit (NEON) ----------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Bf16V128(byte* w, float* x, int cols, float* scales)
    {
        ushort* p = (ushort*)w;
        Vector128<float> acc0 = default, acc1 = default;
        int i = 0;
        for (; i + 8 <= cols; i += 8)
        {
            var v = Vector128.Load(p + i);
            acc0 = Vector128.FusedMultiplyAdd(Vector128.ShiftLeft(Vector128.WidenLower(v), 16).AsSingle(), Vector128.Load(x + i), acc0);
            acc1 = Vector128.FusedMultiplyAdd(Vector128.ShiftLeft(Vector128.WidenUpper(v), 16).AsSingle(), Vector128.Load(x + i + 4), acc1);
        }
        float sum = Vector128.Sum(acc0 + acc1);
        for (; i < cols; i++) sum += Dequantize.Bf16ToFloat(p[i]) * x[i];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Fp8V128(Vector128<uint> t)
    {
        var magBits = t & Vector128.Create(0x7Fu);
        var normal = Vector128.ShiftLeft(magBits, 20) + Vector128.Create(RebiasE4M3);
        var subnormal = Vector128.ConvertToSingle(magBits.AsInt32()) * Vector128.Create(Pow2_m9);
        var mag = Vector128.ConditionalSelect(Vector128.LessThan(magBits, Vector128.Create(8u)).AsSingle(), subnormal, normal.AsSingle());
        var v = (mag.AsUInt32() | Vector128.ShiftLeft(t & Vector128.Create(0x80u), 24)).AsSingle();
        return Vector128.ConditionalSelect(Vector128.Equals(magBits, Vector128.Create(0x7Fu)).AsSingle(), Vector128.Create(float.NaN), v);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Fp8V128(byte* w, float* x, int cols, float* scales)
    {
        var acc = Vector128<float>.Zero;
        float tail = 0;
        for (int c0 = 0; c0 < cols; c0 += 128)
        {
            int end = Math.Min(cols, c0 + 128), i = c0;
            var part = Vector128<float>.Zero;
            for (; i + 16 <= end; i += 16)
            {
                var b = Vector128.Load(w + i);
                var s0 = Vector128.WidenLower(b);
                var s1 = Vector128.WidenUpper(b);
                part = Vector128.FusedMultiplyAdd(Fp8V128(Vector128.WidenLower(s0)), Vector128.Load(x + i), part);
                part = Vector128.FusedMultiplyAdd(Fp8V128(Vector128.WidenUpper(s0)), Vector128.Load(x + i + 4), part);
                part = Vector128.FusedMultiplyAdd(Fp8V128(Vector128.WidenLower(s1)), Vector128.Load(x + i + 8), part);
                part = Vector128.FusedMultiplyAdd(Fp8V128(Vector128.WidenUpper(s1)), Vector128.Load(x + i + 12), part);
            }
            float scale = scales[c0 / 128];
            acc = Vector128.FusedMultiplyAdd(part, Vector128.Create(scale), acc);
            float t = 0;
            for (; i < end; i++) t += Dequantize.Fp8E4M3ToFloat(w[i]) * x[i];
            tail += t * scale;
        }
        return Vector128.Sum(acc) + tail;
    }

    /// <summary>Decodes 16 FP8 bytes with the 128-bit bit trick (exposed so tests check it on all 256 codes).</summary>
    internal static void DecodeFp8x16(byte* src, float* dst)
    {
        var b = Vector128.Load(src);
        var s0 = Vector128.WidenLower(b);
        var s1 = Vector128.WidenUpper(b);
        Fp8V128(Vector128.WidenLower(s0)).Store(dst);
        Fp8V128(Vector128.WidenUpper(s0)).Store(dst + 4);
        Fp8V128(Vector128.WidenLower(s1)).Store(dst + 8);
        Fp8V128(Vector128.WidenUpper(s1)).Store(dst + 12);
    }
}
