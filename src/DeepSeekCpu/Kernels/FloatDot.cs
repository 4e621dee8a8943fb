using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Dot products of one row of a float-like weight format (F32, F16, BF16, FP8 E4M3) with float32 activations.
/// Decoding happens in registers (<see cref="Bf16Decode"/>, <see cref="Fp8Decode"/>); one driver
/// (<see cref="Dot{TWidth, TVector, TDecode}"/>) runs either format at each vector width, in the manner of
/// TensorPrimitives' operator structs: 512 (AVX-512), 256 (AVX2), 128 (NEON), with the scalar specification beside
/// it. FP8 <c>scales</c> are the row's 128-column block scales.
/// </summary>
internal static unsafe class FloatDot
{
    public static float F32(byte* w, float* x, int cols, float* scales) =>
        TensorPrimitives.Dot(new ReadOnlySpan<float>(w, cols), new ReadOnlySpan<float>(x, cols));

    // ---------- scalar specification ----------

    public static float F16Scalar(byte* w, float* x, int cols, float* scales)
    {
        float sum = 0;
        for (int i = 0; i < cols; i++) sum += (float)((Half*)w)[i] * x[i];
        return sum;
    }

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

    // ---------- entries per format and width (the GEMV's table names these) ----------

    public static float F16V512(byte* w, float* x, int cols, float* scales) => Dot<W512, Vector512<float>, F16Decode>(w, x, cols, scales);
    public static float F16V256(byte* w, float* x, int cols, float* scales) => Dot<W256, Vector256<float>, F16Decode>(w, x, cols, scales);
    public static float F16V128(byte* w, float* x, int cols, float* scales) => Dot<W128, Vector128<float>, F16Decode>(w, x, cols, scales);
    public static float Bf16V512(byte* w, float* x, int cols, float* scales) => Dot<W512, Vector512<float>, Bf16Decode>(w, x, cols, scales);
    public static float Bf16V256(byte* w, float* x, int cols, float* scales) => Dot<W256, Vector256<float>, Bf16Decode>(w, x, cols, scales);
    public static float Bf16V128(byte* w, float* x, int cols, float* scales) => Dot<W128, Vector128<float>, Bf16Decode>(w, x, cols, scales);
    public static float Fp8V512(byte* w, float* x, int cols, float* scales) => Dot<W512, Vector512<float>, Fp8Decode>(w, x, cols, scales);
    public static float Fp8V256(byte* w, float* x, int cols, float* scales) => Dot<W256, Vector256<float>, Fp8Decode>(w, x, cols, scales);
    public static float Fp8V128(byte* w, float* x, int cols, float* scales) => Dot<W128, Vector128<float>, Fp8Decode>(w, x, cols, scales);

    /// <summary>
    /// Σ decode(w)[i]·x[i], per scale block of <typeparamref name="TDecode"/> (all of the row where it has none):
    /// four independent FMA chains over 4 vectors per step (with fewer the loop waits on FMA latency instead of
    /// memory), the block's partial sum scaled once, and a scalar tail.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Dot<TWidth, TVector, TDecode>(byte* w, float* x, int cols, float* scales)
        where TWidth : IWidth<TVector> where TVector : unmanaged where TDecode : IFloatDecode
    {
        int n = TWidth.Count, block = TDecode.ScaleBlock > 0 ? TDecode.ScaleBlock : Math.Max(cols, 1);
        var acc = TWidth.Zero;
        float tail = 0;
        for (int c0 = 0; c0 < cols; c0 += block)
        {
            int end = Math.Min(cols, c0 + block), i = c0;
            TVector p0 = TWidth.Zero, p1 = TWidth.Zero, p2 = TWidth.Zero, p3 = TWidth.Zero;
            for (; i + 4 * n <= end; i += 4 * n)
            {
                p0 = TWidth.Fma(TDecode.Decode<TWidth, TVector>(w, i), TWidth.Load(x + i), p0);
                p1 = TWidth.Fma(TDecode.Decode<TWidth, TVector>(w, i + n), TWidth.Load(x + i + n), p1);
                p2 = TWidth.Fma(TDecode.Decode<TWidth, TVector>(w, i + 2 * n), TWidth.Load(x + i + 2 * n), p2);
                p3 = TWidth.Fma(TDecode.Decode<TWidth, TVector>(w, i + 3 * n), TWidth.Load(x + i + 3 * n), p3);
            }
            for (; i + n <= end; i += n) p0 = TWidth.Fma(TDecode.Decode<TWidth, TVector>(w, i), TWidth.Load(x + i), p0);
            var part = TWidth.Add(TWidth.Add(p0, p1), TWidth.Add(p2, p3));
            if (TDecode.ScaleBlock == 0)
            {
                // One block: the scalar tail adds onto the vector sum.
                float sum = TWidth.Sum(part);
                for (; i < end; i++) sum += TDecode.Scalar(w, i) * x[i];
                return sum;
            }
            float scale = scales[c0 / block], t = 0;
            for (; i < end; i++) t += TDecode.Scalar(w, i) * x[i];
            acc = TWidth.Fma(part, TWidth.Broadcast(scale), acc);
            tail += t * scale;
        }
        return TWidth.Sum(acc) + tail;
    }

    /// <summary>A weight format decoded in registers: one vector decoder generic over the width, plus the scalar one.</summary>
    internal interface IFloatDecode
    {
        /// <summary>Columns per scale block (FP8: 128), or 0 where the format has no block scales.</summary>
        static abstract int ScaleBlock { get; }
        static abstract float Scalar(byte* w, int i);
        /// <summary>Values i .. i + TWidth.Count as float32.</summary>
        static abstract TVector Decode<TWidth, TVector>(byte* w, int i) where TWidth : IWidth<TVector> where TVector : unmanaged;
    }

    /// <summary>
    /// n values of a float-like format as float32 (a KV cache's f16/bf16 rows, a tile at a time): the decoder's widest
    /// vector on this machine, then its scalar definition for the tail. Bit-exact with the scalar definitions.
    /// </summary>
    /// <summary><paramref name="rows"/> rows of <see cref="Widen{TDecode}"/>: row r from w + r·<paramref name="wStride"/>
    /// bytes to dst + r·n, in one call (a KV cache tile's rows: per-row calls cost as much as their 8 vectors).</summary>
    public static void WidenRows<TDecode>(byte* w, int wStride, float* dst, int n, int rows) where TDecode : IFloatDecode
    {
        if (Vector512.IsHardwareAccelerated && n % 16 == 0)
        {
            for (int r = 0; r < rows; r++, w += wStride, dst += n)
                for (int i = 0; i < n; i += 16) TDecode.Decode<W512, Vector512<float>>(w, i).Store(dst + i);
            return;
        }
        for (int r = 0; r < rows; r++) Widen<TDecode>(w + (long)r * wStride, dst + (long)r * n, n);
    }

    public static void Widen<TDecode>(byte* w, float* dst, int n) where TDecode : IFloatDecode
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i + 16 <= n; i += 16) TDecode.Decode<W512, Vector512<float>>(w, i).Store(dst + i);
        else if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= n; i += 8) TDecode.Decode<W256, Vector256<float>>(w, i).Store(dst + i);
        else if (Vector128.IsHardwareAccelerated)
            for (; i + 4 <= n; i += 4) TDecode.Decode<W128, Vector128<float>>(w, i).Store(dst + i);
        for (; i < n; i++) dst[i] = TDecode.Scalar(w, i);
    }

    /// <summary>
    /// IEEE half rebuilt with integer operations (TensorPrimitives' Half conversion took a fifth of a decoding step
    /// at 4K of f16 cache): exponent and mantissa shifted to float32's places (bit 13 up) and the exponent rebiased
    /// from 15 to 127 by an integer add; subnormal halves (exponent 0) are m · 2^-24, converted from the integer (no
    /// float subnormals: they cost microcode assists on this CPU); infinities and NaNs (exponent 31) get float32's
    /// all-ones exponent, NaNs their quiet bit as (float)Half sets it; the sign goes to bit 31.
    /// </summary>
    internal readonly struct F16Decode : IFloatDecode
    {
        private const uint Rebias = 112u << 23;          // (127 − 15) << 23
        private const uint InfRebias = 224u << 23;       // exponent 31 << 23 (at bit 23 after the shift) → 255 << 23
        private const uint Exp31 = 31u << 23, QuietBit = 1u << 22;
        private const float Pow2_m24 = 1f / (1 << 24);

        public static int ScaleBlock => 0;
        public static float Scalar(byte* w, int i) => (float)((Half*)w)[i];

        /// <remarks>
        /// A vector whose halves are all normal (exponent neither 0 nor 31: in a KV cache nearly every vector) takes
        /// the short path, 5 integer operations after a test: ((h + 0x400) &amp; 0x7800) is zero exactly for exponents
        /// 0 and 31 (the mantissa's 10 bits never carry into bit 11; the sign's carry falls outside the mask). The full
        /// decoding below it costs 16 (a tenth of a V2-Lite decoding step at 4K was this conversion).
        /// </remarks>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Decode<TW, TV>(byte* w, int i) where TW : IWidth<TV> where TV : unmanaged
        {
            var t = TW.WidenU16((ushort*)w + i);                                     // the halves' bits, one per 32-bit lane
            if (!TW.AnyZero(TW.And(TW.AddBits(t, TW.Bits(0x400u)), 0x7800u)))
                return TW.Or(TW.AddBits(TW.ShiftLeft(TW.And(t, 0x7FFFu), 13), TW.Bits(Rebias)), TW.ShiftLeft(TW.And(t, 0x8000u), 16));
            return Full<TW, TV>(t);
        }

        /// <summary>Every half, zeros, subnormals, infinities and NaNs included.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        internal static TV Full<TW, TV>(TV t) where TW : IWidth<TV> where TV : unmanaged
        {
            var em = TW.ShiftLeft(TW.And(t, 0x7FFFu), 13);
            var sub = TW.Multiply(TW.IntToFloat(TW.And(t, 0x3FFu)), TW.Broadcast(Pow2_m24));
            var rebias = TW.Select(TW.GreaterThanOrEqual(em, Exp31), TW.Bits(InfRebias), TW.Bits(Rebias));
            var quiet = TW.And(TW.GreaterThan(em, Exp31), QuietBit);
            var mag = TW.Select(TW.LessThan(em, 1u << 23), sub, TW.Or(TW.AddBits(em, rebias), quiet));
            return TW.Or(mag, TW.ShiftLeft(TW.And(t, 0x8000u), 16));
        }
    }

    /// <summary>BF16 is the upper half of a float32.</summary>
    internal readonly struct Bf16Decode : IFloatDecode
    {
        public static int ScaleBlock => 0;
        public static float Scalar(byte* w, int i) => Dequantize.Bf16ToFloat(((ushort*)w)[i]);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Decode<TW, TV>(byte* w, int i) where TW : IWidth<TV> where TV : unmanaged =>
            TW.ShiftLeft(TW.WidenU16((ushort*)w + i), 16);
    }

    /// <summary>
    /// FP8 E4M3 rebuilt with integer operations: its 7 magnitude bits go to float32 bit 20 (exponent at bit 23,
    /// mantissa's top 3 bits below) and the exponent is rebiased from 7 to 127 by an integer add; subnormal codes
    /// (exponent 0) are m · 2^-9, converted from the integer (no float subnormals anywhere: they cost microcode assists
    /// on this CPU); the sign goes to bit 31 and the NaN codes 0x7F/0xFF are selected explicitly.
    /// </summary>
    internal readonly struct Fp8Decode : IFloatDecode
    {
        /// <summary>(127 − 7) &lt;&lt; 23: moves a normal E4M3 exponent (bias 7), placed at float32 bit 23, to bias 127.</summary>
        private const uint RebiasE4M3 = 120u << 23;
        private const float Pow2_m9 = 1f / 512; // subnormal E4M3: m · 2^-6 / 8

        public static int ScaleBlock => 128;
        public static float Scalar(byte* w, int i) => Dequantize.Fp8E4M3ToFloat(w[i]);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Decode<TW, TV>(byte* w, int i) where TW : IWidth<TV> where TV : unmanaged
        {
            var t = TW.WidenU8(w + i);                                               // the codes, one per 32-bit lane
            var magBits = TW.And(t, 0x7Fu);
            var normal = TW.AddBits(TW.ShiftLeft(magBits, 20), TW.Bits(RebiasE4M3));
            var subnormal = TW.Multiply(TW.IntToFloat(magBits), TW.Broadcast(Pow2_m9));
            var mag = TW.Select(TW.LessThan(magBits, 8u), subnormal, normal);
            var v = TW.Or(mag, TW.ShiftLeft(TW.And(t, 0x80u), 24));
            return TW.Select(TW.EqualBits(magBits, 0x7Fu), TW.Broadcast(float.NaN), v);
        }
    }

    /// <summary>The vector operations the driver needs, at one width.</summary>
    internal interface IWidth<TVector> where TVector : unmanaged
    {
        /// <summary>float32 lanes.</summary>
        static abstract int Count { get; }
        static abstract TVector Zero { get; }
        static abstract TVector Load(float* x);
        static abstract void Store(TVector v, float* x);
        static abstract TVector Broadcast(float v);
        static abstract TVector Add(TVector a, TVector b);
        static abstract TVector Fma(TVector a, TVector b, TVector c);
        static abstract float Sum(TVector v);
        /// <summary>The lane sums of four vectors at once, [Σa, Σb, Σc, Σd]: one transposing reduction in place of four
        /// (a decoding row's scores, one dot product per head and key).</summary>
        static abstract Vector128<float> Sum4(TVector a, TVector b, TVector c, TVector d);
        static abstract TVector Multiply(TVector a, TVector b);
        static abstract TVector Subtract(TVector a, TVector b);
        static abstract TVector Select(TVector mask, TVector a, TVector b);
        /// <summary>Lane-wise maximum (vmaxps: no NaN or signed-zero rules; attention's scores are finite or −∞).</summary>
        static abstract TVector Max(TVector a, TVector b);
        /// <summary>Lane-wise e^x in float32 (<see cref="VectorExp"/>: 0 below −87, so −∞ gives 0).</summary>
        static abstract TVector Exp(TVector a);

        // The decoders' integer operations: a vector's lanes as 32-bit unsigned integers (the bits of the floats).
        /// <summary>Count uint16 values, each widened into a lane.</summary>
        static abstract TVector WidenU16(ushort* p);
        /// <summary>Count bytes, each widened into a lane.</summary>
        static abstract TVector WidenU8(byte* p);
        static abstract TVector Bits(uint v);
        static abstract TVector And(TVector a, uint mask);
        static abstract TVector Or(TVector a, TVector b);
        static abstract TVector AddBits(TVector a, TVector b);
        static abstract TVector ShiftLeft(TVector a, int bits);
        /// <summary>All ones in the lanes where a &lt; b (unsigned), else zero; and so on.</summary>
        static abstract TVector LessThan(TVector a, uint b);
        static abstract TVector GreaterThan(TVector a, uint b);
        static abstract TVector GreaterThanOrEqual(TVector a, uint b);
        static abstract TVector EqualBits(TVector a, uint b);
        /// <summary>Lanes as int32, converted to float.</summary>
        static abstract TVector IntToFloat(TVector a);
        /// <summary>Whether any lane's 32 bits are all zero.</summary>
        static abstract bool AnyZero(TVector a);
    }

    internal readonly struct W128 : IWidth<Vector128<float>>
    {
        public static int Count => 4;
        public static Vector128<float> Zero => Vector128<float>.Zero;
        public static Vector128<float> Load(float* x) => Vector128.Load(x);
        public static void Store(Vector128<float> v, float* x) => v.Store(x);
        public static Vector128<float> Broadcast(float v) => Vector128.Create(v);
        public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
        public static Vector128<float> Fma(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.FusedMultiplyAdd(a, b, c);
        public static float Sum(Vector128<float> v) => Vector128.Sum(v);
        public static Vector128<float> Sum4(Vector128<float> a, Vector128<float> b, Vector128<float> c, Vector128<float> d)
        {
            if (!Sse.IsSupported) return Vector128.Create(Vector128.Sum(a), Vector128.Sum(b), Vector128.Sum(c), Vector128.Sum(d));
            // [a0 + a2, b0 + b2, a1 + a3, b1 + b3] and the same of c, d; then their halves crossed and added
            var ab = Sse.UnpackLow(a, b) + Sse.UnpackHigh(a, b);
            var cd = Sse.UnpackLow(c, d) + Sse.UnpackHigh(c, d);
            return Sse.Shuffle(ab, cd, 0x44) + Sse.Shuffle(ab, cd, 0xEE);
        }
        public static Vector128<float> Multiply(Vector128<float> a, Vector128<float> b) => a * b;
        public static Vector128<float> Subtract(Vector128<float> a, Vector128<float> b) => a - b;
        public static Vector128<float> Select(Vector128<float> mask, Vector128<float> a, Vector128<float> b) => Vector128.ConditionalSelect(mask, a, b);
        public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.MaxNative(a, b);
        public static Vector128<float> Exp(Vector128<float> a) => VectorExp.Exp(a);
        public static bool AnyZero(Vector128<float> a) => Vector128.EqualsAny(a.AsUInt32(), Vector128<uint>.Zero);
        public static Vector128<float> WidenU16(ushort* p) => Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(ulong*)p).AsUInt16()).AsSingle();
        public static Vector128<float> WidenU8(byte* p) => Vector128.WidenLower(Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(uint*)p).AsByte())).AsSingle();
        public static Vector128<float> Bits(uint v) => Vector128.Create(v).AsSingle();
        public static Vector128<float> And(Vector128<float> a, uint mask) => (a.AsUInt32() & Vector128.Create(mask)).AsSingle();
        public static Vector128<float> Or(Vector128<float> a, Vector128<float> b) => (a.AsUInt32() | b.AsUInt32()).AsSingle();
        public static Vector128<float> AddBits(Vector128<float> a, Vector128<float> b) => (a.AsUInt32() + b.AsUInt32()).AsSingle();
        public static Vector128<float> ShiftLeft(Vector128<float> a, int bits) => Vector128.ShiftLeft(a.AsUInt32(), bits).AsSingle();
        public static Vector128<float> LessThan(Vector128<float> a, uint b) => Vector128.LessThan(a.AsUInt32(), Vector128.Create(b)).AsSingle();
        public static Vector128<float> GreaterThan(Vector128<float> a, uint b) => Vector128.GreaterThan(a.AsUInt32(), Vector128.Create(b)).AsSingle();
        public static Vector128<float> GreaterThanOrEqual(Vector128<float> a, uint b) => Vector128.GreaterThanOrEqual(a.AsUInt32(), Vector128.Create(b)).AsSingle();
        public static Vector128<float> EqualBits(Vector128<float> a, uint b) => Vector128.Equals(a.AsUInt32(), Vector128.Create(b)).AsSingle();
        public static Vector128<float> IntToFloat(Vector128<float> a) => Vector128.ConvertToSingle(a.AsInt32());
    }

    internal readonly struct W256 : IWidth<Vector256<float>>
    {
        public static int Count => 8;
        public static Vector256<float> Zero => Vector256<float>.Zero;
        public static Vector256<float> Load(float* x) => Vector256.Load(x);
        public static void Store(Vector256<float> v, float* x) => v.Store(x);
        public static Vector256<float> Broadcast(float v) => Vector256.Create(v);
        public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
        public static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.FusedMultiplyAdd(a, b, c);
        public static float Sum(Vector256<float> v) => Vector256.Sum(v);
        public static Vector128<float> Sum4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
        {
            // per 128-bit half as W128.Sum4, then the halves added
            var ab = Avx.UnpackLow(a, b) + Avx.UnpackHigh(a, b);
            var cd = Avx.UnpackLow(c, d) + Avx.UnpackHigh(c, d);
            var u = Avx.Shuffle(ab, cd, 0x44) + Avx.Shuffle(ab, cd, 0xEE);
            return u.GetLower() + u.GetUpper();
        }
        public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;
        public static Vector256<float> Subtract(Vector256<float> a, Vector256<float> b) => a - b;
        public static Vector256<float> Select(Vector256<float> mask, Vector256<float> a, Vector256<float> b) => Vector256.ConditionalSelect(mask, a, b);
        public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.MaxNative(a, b);
        public static Vector256<float> Exp(Vector256<float> a) => VectorExp.Exp(a);
        public static bool AnyZero(Vector256<float> a) => Vector256.EqualsAny(a.AsUInt32(), Vector256<uint>.Zero);
        public static Vector256<float> WidenU16(ushort* p) => Vector256.WidenLower(Vector128.Load(p).ToVector256Unsafe()).AsSingle();
        public static Vector256<float> WidenU8(byte* p) => Vector256.WidenLower(Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(ulong*)p).AsByte()).ToVector256Unsafe()).AsSingle();
        public static Vector256<float> Bits(uint v) => Vector256.Create(v).AsSingle();
        public static Vector256<float> And(Vector256<float> a, uint mask) => (a.AsUInt32() & Vector256.Create(mask)).AsSingle();
        public static Vector256<float> Or(Vector256<float> a, Vector256<float> b) => (a.AsUInt32() | b.AsUInt32()).AsSingle();
        public static Vector256<float> AddBits(Vector256<float> a, Vector256<float> b) => (a.AsUInt32() + b.AsUInt32()).AsSingle();
        public static Vector256<float> ShiftLeft(Vector256<float> a, int bits) => Vector256.ShiftLeft(a.AsUInt32(), bits).AsSingle();
        public static Vector256<float> LessThan(Vector256<float> a, uint b) => Vector256.LessThan(a.AsUInt32(), Vector256.Create(b)).AsSingle();
        public static Vector256<float> GreaterThan(Vector256<float> a, uint b) => Vector256.GreaterThan(a.AsUInt32(), Vector256.Create(b)).AsSingle();
        public static Vector256<float> GreaterThanOrEqual(Vector256<float> a, uint b) => Vector256.GreaterThanOrEqual(a.AsUInt32(), Vector256.Create(b)).AsSingle();
        public static Vector256<float> EqualBits(Vector256<float> a, uint b) => Vector256.Equals(a.AsUInt32(), Vector256.Create(b)).AsSingle();
        public static Vector256<float> IntToFloat(Vector256<float> a) => Vector256.ConvertToSingle(a.AsInt32());
    }

    internal readonly struct W512 : IWidth<Vector512<float>>
    {
        public static int Count => 16;
        public static Vector512<float> Zero => Vector512<float>.Zero;
        public static Vector512<float> Load(float* x) => Vector512.Load(x);
        public static void Store(Vector512<float> v, float* x) => v.Store(x);
        public static Vector512<float> Broadcast(float v) => Vector512.Create(v);
        public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
        public static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);
        public static float Sum(Vector512<float> v) => Vector512.Sum(v);
        public static Vector128<float> Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
        {
            // per 128-bit block as W128.Sum4, then the four blocks added
            var ab = Avx512F.UnpackLow(a, b) + Avx512F.UnpackHigh(a, b);
            var cd = Avx512F.UnpackLow(c, d) + Avx512F.UnpackHigh(c, d);
            var u = Avx512F.Shuffle(ab, cd, 0x44) + Avx512F.Shuffle(ab, cd, 0xEE);
            var h = u.GetLower() + u.GetUpper();
            return h.GetLower() + h.GetUpper();
        }
        public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;
        public static Vector512<float> Subtract(Vector512<float> a, Vector512<float> b) => a - b;
        public static Vector512<float> Select(Vector512<float> mask, Vector512<float> a, Vector512<float> b) => Vector512.ConditionalSelect(mask, a, b);
        public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.MaxNative(a, b);
        public static Vector512<float> Exp(Vector512<float> a) => VectorExp.Exp(a);
        public static bool AnyZero(Vector512<float> a) => Vector512.EqualsAny(a.AsUInt32(), Vector512<uint>.Zero);
        public static Vector512<float> WidenU16(ushort* p) => Vector512.WidenLower(Vector256.Load(p).ToVector512Unsafe()).AsSingle();
        public static Vector512<float> WidenU8(byte* p) => Vector512.WidenLower(Vector256.WidenLower(Vector128.Load(p).ToVector256Unsafe()).ToVector512Unsafe()).AsSingle();
        public static Vector512<float> Bits(uint v) => Vector512.Create(v).AsSingle();
        public static Vector512<float> And(Vector512<float> a, uint mask) => (a.AsUInt32() & Vector512.Create(mask)).AsSingle();
        public static Vector512<float> Or(Vector512<float> a, Vector512<float> b) => (a.AsUInt32() | b.AsUInt32()).AsSingle();
        public static Vector512<float> AddBits(Vector512<float> a, Vector512<float> b) => (a.AsUInt32() + b.AsUInt32()).AsSingle();
        public static Vector512<float> ShiftLeft(Vector512<float> a, int bits) => Vector512.ShiftLeft(a.AsUInt32(), bits).AsSingle();
        public static Vector512<float> LessThan(Vector512<float> a, uint b) => Vector512.LessThan(a.AsUInt32(), Vector512.Create(b)).AsSingle();
        public static Vector512<float> GreaterThan(Vector512<float> a, uint b) => Vector512.GreaterThan(a.AsUInt32(), Vector512.Create(b)).AsSingle();
        public static Vector512<float> GreaterThanOrEqual(Vector512<float> a, uint b) => Vector512.GreaterThanOrEqual(a.AsUInt32(), Vector512.Create(b)).AsSingle();
        public static Vector512<float> EqualBits(Vector512<float> a, uint b) => Vector512.Equals(a.AsUInt32(), Vector512.Create(b)).AsSingle();
        public static Vector512<float> IntToFloat(Vector512<float> a) => Vector512.ConvertToSingle(a.AsInt32());
    }

    /// <summary>Decodes 16 FP8 bytes with the 128-bit bit trick (exposed so tests check it on all 256 codes).</summary>
    internal static void DecodeFp8x16(byte* src, float* dst)
    {
        for (int i = 0; i < 16; i += 4) Fp8Decode.Decode<W128, Vector128<float>>(src, i).Store(dst + i);
    }
}
