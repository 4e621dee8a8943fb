using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// One token's activations quantized to 8 bits for the integer dot products, kept as separate arrays (not ggml's
/// interleaved block_q8_0 / block_q8_K) so SIMD bodies load 64 consecutive quants at once.
/// Q8_0 style (for Q8_0/Q4_0/Q4_1/Q5_0 weights): a float scale per 32 (<see cref="D"/>) and <see cref="S"/> = d·Σq per 32
/// (ggml's block_q8_1.s, used by offset formats). Q8_K style (for the K-quants): a float scale per 256 and
/// <see cref="BSums"/> = Σq per 16, exactly as ggml's quantize_row_q8_K_ref.
/// Scales stay float32 (ggml rounds block_q8_0.d to half), which is slightly more accurate.
/// </summary>
internal unsafe struct ActQ8
{
    public sbyte* Q;
    public float* D;
    public float* S;
    public short* BSums;
    /// <summary>
    /// Q8_0 style only, where <see cref="HasNibbleOrder"/> and not null: the activations rearranged for nibble-packed weights
    /// (Q4_0), 256 bytes per group of 4 blocks: the first 16 quants of each block (64 bytes: what the low nibbles
    /// multiply), the last 16 of each (64 bytes: the high nibbles), the 4 block scales each repeated 4 times
    /// (16 floats), and 8·Σq over each int32 lane of the products (16 ints: the −8 offset of Q4_0).
    /// </summary>
    public byte* Nib;
    public int Cols;

    /// <summary>Bytes one token needs (either style), 64-byte aligned sections.</summary>
    public static long BytesFor(int cols) => Align(cols) + 2 * Align(cols / 32 * 4) + Align(cols / 16 * 2) + 2 * Align(cols) + 64;

    /// <summary>Whether Q8_0-style quantization also fills <see cref="Nib"/> (only the AVX-512 VBMI Q4_0 body reads it).</summary>
    public static bool HasNibbleOrder => Vector512.IsHardwareAccelerated && Avx512Vbmi.IsSupported;

    private static long Align(long v) => (v + 63) & ~63L;

    /// <summary>Lays the arrays out in <paramref name="mem"/> (<see cref="BytesFor"/> bytes).</summary>
    public static ActQ8 At(byte* mem, int cols)
    {
        var a = new ActQ8 { Cols = cols };
        a.Q = (sbyte*)mem; mem += Align(cols);
        a.D = (float*)mem; mem += Align(cols / 32 * 4);
        a.S = (float*)mem; mem += Align(cols / 32 * 4);
        a.BSums = (short*)mem; mem += Align(cols / 16 * 2);
        a.Nib = mem;
        return a;
    }

    /// <summary>Which activation style weights of <paramref name="t"/> multiply against.</summary>
    public static bool UsesQ8K(DType t) => t is DType.Q4_K or DType.Q5_K or DType.Q6_K or DType.Q8_K
        or DType.Q2_K or DType.Q3_K or DType.IQ4_XS
        || IQuantDecode.Handles(t);

    /// <summary>Q8_0 style: d = max|x|/127, q = round-half-even(x/d), s = d·Σq, per 32. SIMD where available
    /// (the same float operations, so the same bytes as <see cref="QuantizeQ8_0Scalar"/>).</summary>
    public static void QuantizeQ8_0(float* x, ActQ8* a)
    {
        if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported) { QuantizeQ8_0V512(x, a); return; }
        if (!Vector128.IsHardwareAccelerated) { QuantizeQ8_0Scalar(x, a); return; }
        for (int b = 0; b < a->Cols / 32; b++)
        {
            float* xb = x + 32 * b;
            var v0 = Vector128.Load(xb); var v1 = Vector128.Load(xb + 4); var v2 = Vector128.Load(xb + 8); var v3 = Vector128.Load(xb + 12);
            var v4 = Vector128.Load(xb + 16); var v5 = Vector128.Load(xb + 20); var v6 = Vector128.Load(xb + 24); var v7 = Vector128.Load(xb + 28);
            var m = Vector128.Max(Vector128.Max(Vector128.Max(Vector128.Abs(v0), Vector128.Abs(v1)), Vector128.Max(Vector128.Abs(v2), Vector128.Abs(v3))),
                                  Vector128.Max(Vector128.Max(Vector128.Abs(v4), Vector128.Abs(v5)), Vector128.Max(Vector128.Abs(v6), Vector128.Abs(v7))));
            float amax = MaxAcross(m);
            float d = amax / 127, id = d != 0 ? 1 / d : 0;
            var vid = Vector128.Create(id);
            var sum = Store8(v0, v1, v2, v3, vid, a->Q + 32 * b) + Store8(v4, v5, v6, v7, vid, a->Q + 32 * b + 16);
            a->D[b] = d;
            a->S[b] = d * Vector128.Sum(sum);
        }
        if (HasNibbleOrder && a->Nib != null) FillNibbleOrder(a);
    }

    /// <summary>
    /// <see cref="QuantizeQ8_0"/> with one 512-bit register per 16 values (about 4x the 128-bit body here; the int8
    /// GEMM quantizes whole prompts through it): vcvtps2dq rounds to nearest even in the default MXCSR mode, as
    /// Round + convert do, and vpmovdb narrows without saturation (|q| ≤ 127 by construction).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void QuantizeQ8_0V512(float* x, ActQ8* a)
    {
        for (int b = 0; b < a->Cols / 32; b++)
        {
            float* xb = x + 32 * b;
            var v0 = Vector512.Load(xb);
            var v1 = Vector512.Load(xb + 16);
            var m = Vector512.Max(Vector512.Abs(v0), Vector512.Abs(v1));
            float amax = MaxAcross(Vector128.Max(Vector256.Max(m.GetLower(), m.GetUpper()).GetLower(), Vector256.Max(m.GetLower(), m.GetUpper()).GetUpper()));
            float d = amax / 127, id = d != 0 ? 1 / d : 0;
            var q0 = Avx512F.ConvertToVector512Int32(v0 * id);
            var q1 = Avx512F.ConvertToVector512Int32(v1 * id);
            Avx512F.ConvertToVector128SByte(q0).Store(a->Q + 32 * b);
            Avx512F.ConvertToVector128SByte(q1).Store(a->Q + 32 * b + 16);
            a->D[b] = d;
            a->S[b] = d * Vector512.Sum(q0 + q1);
        }
        if (HasNibbleOrder && a->Nib != null) FillNibbleOrder(a);
    }

    /// <summary>Builds <see cref="Nib"/> from <see cref="Q"/> and <see cref="D"/> (whole groups of 4 blocks only).</summary>
    private static void FillNibbleOrder(ActQ8* a)
    {
        // Output byte 16i + m of the low half is quant 32i + m; of the high half, 32i + 16 + m.
        var idxLo = Vector512.Create((byte)0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
            32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
            64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79,
            96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111);
        var idxHi = idxLo + Vector512.Create((byte)16);
        var spread = Vector512.Create(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
        var ones = Vector512.Create((byte)1);
        int groups = a->Cols / 128;
        for (int g = 0; g < groups; g++)
        {
            sbyte* q = a->Q + 128 * g;
            byte* dst = a->Nib + 256 * g;
            var x0 = Vector512.Load(q);
            var x1 = Vector512.Load(q + 64);
            var lo = Avx512Vbmi.PermuteVar64x8x2(x0, idxLo.AsSByte(), x1);
            var hi = Avx512Vbmi.PermuteVar64x8x2(x0, idxHi.AsSByte(), x1);
            lo.Store((sbyte*)dst);
            hi.Store((sbyte*)dst + 64);
            Avx512F.PermuteVar16x32(Vector128.Load(a->D + 4 * g).ToVector256Unsafe().ToVector512Unsafe(), spread).Store((float*)(dst + 128));
            var pairs = Avx512BW.MultiplyAddAdjacent(ones, lo) + Avx512BW.MultiplyAddAdjacent(ones, hi);
            Avx512BW.MultiplyAddAdjacent(pairs, Vector512.Create((short)8)).Store((int*)(dst + 192));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float MaxAcross(Vector128<float> m)
    {
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(2, 3, 0, 1)));
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(1, 0, 3, 2)));
        return m.ToScalar();
    }

    /// <summary>Rounds 16 floats × scale half-to-even to int8 (|values| ≤ 127 by construction), stores them, returns their int sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Store8(Vector128<float> a, Vector128<float> b, Vector128<float> c, Vector128<float> d, Vector128<float> scale, sbyte* dst)
    {
        var i0 = Vector128.ConvertToInt32(Vector128.Round(a * scale));
        var i1 = Vector128.ConvertToInt32(Vector128.Round(b * scale));
        var i2 = Vector128.ConvertToInt32(Vector128.Round(c * scale));
        var i3 = Vector128.ConvertToInt32(Vector128.Round(d * scale));
        Vector128.Narrow(Vector128.Narrow(i0, i1), Vector128.Narrow(i2, i3)).Store(dst);
        return (i0 + i1) + (i2 + i3);
    }

    /// <summary>The scalar specification of <see cref="QuantizeQ8_0"/>.</summary>
    public static void QuantizeQ8_0Scalar(float* x, ActQ8* a)
    {
        for (int b = 0; b < a->Cols / 32; b++)
        {
            float* xb = x + 32 * b;
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = MathF.Max(amax, MathF.Abs(xb[j]));
            float d = amax / 127, id = d != 0 ? 1 / d : 0;
            int sum = 0;
            for (int j = 0; j < 32; j++)
            {
                int q = Quantize.NearestInt(xb[j] * id);
                a->Q[32 * b + j] = (sbyte)q;
                sum += q;
            }
            a->D[b] = d;
            a->S[b] = d * sum;
        }
        if (HasNibbleOrder && a->Nib != null) FillNibbleOrder(a);
    }

    /// <summary>Q8_K style: quantize_row_q8_K_ref (iscale = -127/max with max the signed value of largest magnitude,
    /// d = 1/iscale, bsums per 16). SIMD where available, producing the bytes of <see cref="QuantizeQ8_KScalar"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void QuantizeQ8_K(float* x, ActQ8* a)
    {
        if (!Vector128.IsHardwareAccelerated) { QuantizeQ8_KScalar(x, a); return; }
        for (int b = 0; b < a->Cols / 256; b++)
        {
            float* xb = x + 256 * b;
            var m = Vector128<float>.Zero;
            for (int i = 0; i < 256; i += 4) m = Vector128.Max(m, Vector128.Abs(Vector128.Load(xb + i)));
            float amax = MaxAcross(m);
            sbyte* q = a->Q + 256 * b;
            short* bs = a->BSums + 16 * b;
            if (amax == 0)
            {
                new Span<sbyte>(q, 256).Clear();
                new Span<short>(bs, 16).Clear();
                a->D[b] = 0;
                continue;
            }
            // The first element of that magnitude gives the sign (ggml keeps the first on ties).
            float max = 0;
            var target = Vector128.Create(amax);
            for (int i = 0; i < 256; i += 4)
            {
                uint hits = Vector128.ExtractMostSignificantBits(Vector128.Equals(Vector128.Abs(Vector128.Load(xb + i)), target));
                if (hits != 0) { max = xb[i + System.Numerics.BitOperations.TrailingZeroCount(hits)]; break; }
            }
            float iscale = -127f / max;
            for (int g = 0; g < 16; g++)
                bs[g] = (short)(Vector512.IsHardwareAccelerated && Avx512F.IsSupported ? Store16V512(xb + 16 * g, iscale, q + 16 * g) : Store16(xb + 16 * g, iscale, q + 16 * g));
            a->D[b] = 1 / iscale;
        }
    }

    /// <summary>16 values × iscale rounded half-to-even, capped at 127 (ggml's MIN(127, nearest_int(iscale·x))),
    /// stored as int8; returns their sum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Store16(float* x, float iscale, sbyte* q)
    {
        var vs = Vector128.Create(iscale);
        var cap = Vector128.Create(127);
        var i0 = Vector128.Min(cap, Vector128.ConvertToInt32(Vector128.Round(Vector128.Load(x) * vs)));
        var i1 = Vector128.Min(cap, Vector128.ConvertToInt32(Vector128.Round(Vector128.Load(x + 4) * vs)));
        var i2 = Vector128.Min(cap, Vector128.ConvertToInt32(Vector128.Round(Vector128.Load(x + 8) * vs)));
        var i3 = Vector128.Min(cap, Vector128.ConvertToInt32(Vector128.Round(Vector128.Load(x + 12) * vs)));
        Vector128.Narrow(Vector128.Narrow(i0, i1), Vector128.Narrow(i2, i3)).Store(q);
        return Vector128.Sum((i0 + i1) + (i2 + i3));
    }

    /// <summary>
    /// <see cref="Store16"/> in one 512-bit register (the int8 GEMM quantizes whole Q4_K prompts through it): as in
    /// <see cref="QuantizeQ8_0V512"/>, vcvtps2dq rounds to nearest even like Round + convert, and vpmovdb narrows.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Store16V512(float* x, float iscale, sbyte* q)
    {
        var i = Vector512.Min(Vector512.Create(127), Avx512F.ConvertToVector512Int32(Vector512.Load(x) * iscale));
        Avx512F.ConvertToVector128SByte(i).Store(q);
        return Vector512.Sum(i);
    }

    /// <summary>The scalar specification of <see cref="QuantizeQ8_K"/> (ggml's quantize_row_q8_K_ref).</summary>
    public static void QuantizeQ8_KScalar(float* x, ActQ8* a)
    {
        BlockQ8_K blk;
        for (int b = 0; b < a->Cols / 256; b++)
        {
            Quantize.Q8_K(x + 256 * b, &blk);
            Unsafe.CopyBlock(a->Q + 256 * b, blk.Qs, 256);
            Unsafe.CopyBlock(a->BSums + 16 * b, blk.BSums, 32);
            a->D[b] = blk.D;
        }
    }

    public static void QuantizeFor(DType t, float* x, ActQ8* a)
    {
        if (UsesQ8K(t)) QuantizeQ8_K(x, a); else QuantizeQ8_0(x, a);
    }
}
