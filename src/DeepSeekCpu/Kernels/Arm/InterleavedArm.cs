using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using DeepSeekCpu.Kernels.Repack;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.Arm;

/// <summary>
/// ARM64 dot products (DotProd: sdot by selected quadruplet) of one interleaved group of 16 rows
/// (<see cref="Interleave"/>) with one token's activations; maths in <see cref="Reference.InterleavedReference"/>.
/// A 16-byte register of a chunk holds 4 bytes of 4 rows; sdot with one 4-byte quadruplet of the activations
/// accumulates each row in its own int32 lane.
/// </summary>
internal static unsafe class InterleavedArm
{
    private const int HalfFieldMask = unchecked((int)0x8FFF_E000);
    private static float HalfBias => BitConverter.Int32BitsToSingle((127 + 112) << 23);   // 2^112

    /// <summary>Rows 4q..4q+3's half scales as floats, exact (the shift-and-mask of InterleavedX86.Scales16).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Scales4(byte* blk, int q)
    {
        var h = AdvSimd.SignExtendWideningLower(Vector64.Load((short*)blk + 4 * q));
        return (Vector128.ShiftLeft(h, 13) & Vector128.Create(HalfFieldMask)).AsSingle() * Vector128.Create(HalfBias);
    }

    /// <summary>Q4_0 rows 4q..4q+3: nibbles − 8 as signed bytes, chunk j against quadruplet j of the low and high activations.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Q4_0Rows(byte* blk, int q, Vector128<sbyte> xlo, Vector128<sbyte> xhi)
    {
        var mask = Vector128.Create((byte)0x0F);
        var eight = Vector128.Create((sbyte)8);
        byte* c = blk + 32 + 16 * q;
        var c0 = Vector128.Load(c); var c1 = Vector128.Load(c + 64); var c2 = Vector128.Load(c + 128); var c3 = Vector128.Load(c + 192);
        var p = Dp.DotProductBySelectedQuadruplet(Vector128<int>.Zero, (c0 & mask).AsSByte() - eight, xlo, 0);
        p = Dp.DotProductBySelectedQuadruplet(p, AdvSimd.ShiftRightLogical(c0, 4).AsSByte() - eight, xhi, 0);
        p = Dp.DotProductBySelectedQuadruplet(p, (c1 & mask).AsSByte() - eight, xlo, 1);
        p = Dp.DotProductBySelectedQuadruplet(p, AdvSimd.ShiftRightLogical(c1, 4).AsSByte() - eight, xhi, 1);
        p = Dp.DotProductBySelectedQuadruplet(p, (c2 & mask).AsSByte() - eight, xlo, 2);
        p = Dp.DotProductBySelectedQuadruplet(p, AdvSimd.ShiftRightLogical(c2, 4).AsSByte() - eight, xhi, 2);
        p = Dp.DotProductBySelectedQuadruplet(p, (c3 & mask).AsSByte() - eight, xlo, 3);
        return Dp.DotProductBySelectedQuadruplet(p, AdvSimd.ShiftRightLogical(c3, 4).AsSByte() - eight, xhi, 3);
    }

    /// <summary>The 4-row sums of one 32-weight block of Q4_0 or Q8_0 (the only difference between their bodies).</summary>
    private interface IRows4
    {
        static abstract DType Type { get; }
        static abstract Vector128<int> Rows(byte* blk, int q, Vector128<sbyte> xlo, Vector128<sbyte> xhi);
    }

    private readonly struct Q4_0Rows4 : IRows4
    {
        public static DType Type => DType.Q4_0;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<int> Rows(byte* blk, int q, Vector128<sbyte> xlo, Vector128<sbyte> xhi) => Q4_0Rows(blk, q, xlo, xhi);
    }

    private readonly struct Q8_0Rows4 : IRows4
    {
        public static DType Type => DType.Q8_0;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<int> Rows(byte* blk, int q, Vector128<sbyte> xlo, Vector128<sbyte> xhi) => Q8_0Rows(blk, q, xlo, xhi);
    }

    public static void Q4_0(byte* g, ActQ8* a, float* y) => Blocks32<Q4_0Rows4>(g, a, y);
    public static void Q8_0(byte* g, ActQ8* a, float* y) => Blocks32<Q8_0Rows4>(g, a, y);

    /// <summary>Q4_0 and Q8_0: per 32-weight block, the 16 rows as 4 quads of int32 lanes, scaled and accumulated as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Blocks32<T>(byte* g, ActQ8* a, float* y) where T : IRows4
    {
        int nb = a->Cols / 32, blockBytes = Interleave.BlockBytes(T.Type);
        Vector128<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        for (int b = 0; b < nb; b++, g += blockBytes)
        {
            var xlo = Vector128.Load(a->Q + 32 * b);
            var xhi = Vector128.Load(a->Q + 32 * b + 16);
            var dx = Vector128.Create(a->D[b]);
            acc0 = AdvSimd.FusedMultiplyAdd(acc0, AdvSimd.ConvertToSingle(T.Rows(g, 0, xlo, xhi)), Scales4(g, 0) * dx);
            acc1 = AdvSimd.FusedMultiplyAdd(acc1, AdvSimd.ConvertToSingle(T.Rows(g, 1, xlo, xhi)), Scales4(g, 1) * dx);
            acc2 = AdvSimd.FusedMultiplyAdd(acc2, AdvSimd.ConvertToSingle(T.Rows(g, 2, xlo, xhi)), Scales4(g, 2) * dx);
            acc3 = AdvSimd.FusedMultiplyAdd(acc3, AdvSimd.ConvertToSingle(T.Rows(g, 3, xlo, xhi)), Scales4(g, 3) * dx);
        }
        acc0.Store(y); acc1.Store(y + 4); acc2.Store(y + 8); acc3.Store(y + 12);
    }

    /// <summary>
    /// Rows 4q..4q+3 of one Q4_K sub-block pair, chunks j0..j0+3 (from <paramref name="c"/>, 64 bytes apart): low nibbles
    /// against the quadruplets of <paramref name="xlo"/>, high nibbles against those of <paramref name="xhi"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q4_KQuad(byte* c, Vector128<sbyte> xlo, Vector128<sbyte> xhi, ref Vector128<int> lo, ref Vector128<int> hi)
    {
        var mask = Vector128.Create((byte)0x0F);
        Vector128<byte> v0 = Vector128.Load(c), v1 = Vector128.Load(c + 64), v2 = Vector128.Load(c + 128), v3 = Vector128.Load(c + 192);
        lo = Dp.DotProductBySelectedQuadruplet(Dp.DotProductBySelectedQuadruplet(lo, (v0 & mask).AsSByte(), xlo, 0), (v1 & mask).AsSByte(), xlo, 1);
        lo = Dp.DotProductBySelectedQuadruplet(Dp.DotProductBySelectedQuadruplet(lo, (v2 & mask).AsSByte(), xlo, 2), (v3 & mask).AsSByte(), xlo, 3);
        hi = Dp.DotProductBySelectedQuadruplet(Dp.DotProductBySelectedQuadruplet(hi, AdvSimd.ShiftRightLogical(v0, 4).AsSByte(), xhi, 0), AdvSimd.ShiftRightLogical(v1, 4).AsSByte(), xhi, 1);
        hi = Dp.DotProductBySelectedQuadruplet(Dp.DotProductBySelectedQuadruplet(hi, AdvSimd.ShiftRightLogical(v2, 4).AsSByte(), xhi, 2), AdvSimd.ShiftRightLogical(v3, 4).AsSByte(), xhi, 3);
    }

    /// <summary>Rows 4q..4q+3 of one Q4_K sub-block pair (8 chunks from <paramref name="c"/>): low and high nibble sums per row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector128<int> lo, Vector128<int> hi) Q4_KPair(byte* c, sbyte* x)
    {
        Vector128<int> lo = default, hi = default;
        Q4_KQuad(c, Vector128.Load(x), Vector128.Load(x + 32), ref lo, ref hi);            // elements 0..15 and 32..47
        Q4_KQuad(c + 256, Vector128.Load(x + 16), Vector128.Load(x + 48), ref lo, ref hi); // 16..31 and 48..63
        return (lo, hi);
    }

    /// <summary>4 rows' bytes (scales of one sub-block) as int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Bytes4(byte* p) =>
        AdvSimd.ZeroExtendWideningLower(AdvSimd.ZeroExtendWideningLower(Vector64.CreateScalar(*(uint*)p).AsByte()).GetLower()).AsInt32();

    /// <summary>One K-quant format's sums of rows 4q..4q+3 over one super-block, scaled into <paramref name="sum"/>.</summary>
    private interface IQuad
    {
        static abstract DType Type { get; }
        static abstract Vector128<float> Add(Vector128<float> sum, byte* blk, int q, sbyte* x, short* bs, Vector128<float> dx);
    }

    /// <summary>Q4_K and Q6_K: super-block by super-block, the 16 rows as 4 quads accumulated in float.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SuperBlocks<T>(byte* g, ActQ8* a, float* y) where T : IQuad
    {
        int blockBytes = Interleave.BlockBytes(T.Type);
        Vector128<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        for (int b = 0; b < a->Cols / 256; b++, g += blockBytes)
        {
            sbyte* x = a->Q + 256 * b;
            short* bs = a->BSums + 16 * b;
            var dx = Vector128.Create(a->D[b]);
            acc0 = T.Add(acc0, g, 0, x, bs, dx); acc1 = T.Add(acc1, g, 1, x, bs, dx);
            acc2 = T.Add(acc2, g, 2, x, bs, dx); acc3 = T.Add(acc3, g, 3, x, bs, dx);
        }
        acc0.Store(y); acc1.Store(y + 4); acc2.Store(y + 8); acc3.Store(y + 12);
    }

    public static void Q4_K(byte* g, ActQ8* a, float* y) => SuperBlocks<Q4_KQuad4>(g, a, y);
    public static void Q6_K(byte* g, ActQ8* a, float* y) => SuperBlocks<Q6_KQuad4>(g, a, y);

    /// <summary>Q4_K: sdot per sub-block, scales as int32 multiplies, mins against the activations' sub-block sums.</summary>
    private readonly struct Q4_KQuad4 : IQuad
    {
        public static DType Type => DType.Q4_K;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<float> Add(Vector128<float> sum, byte* g, int q, sbyte* x, short* bs, Vector128<float> dx)
        {
            Vector128<int> isum = default, msum = default;
            for (int p = 0; p < 4; p++)
            {
                var (lo, hi) = Q4_KPair(g + Interleave.Q4_KQuants + 512 * p + 16 * q, x + 64 * p);
                isum += lo * Bytes4(g + Interleave.Q4_KScales + 32 * p + 4 * q) + hi * Bytes4(g + Interleave.Q4_KScales + 32 * p + 16 + 4 * q);
                // mins of rows 4q..4q+3 for sub-blocks 2p, 2p+1: [m0 m1] per row, against the two sub-blocks' sums
                var m = AdvSimd.ZeroExtendWideningLower(Vector64.Load(g + Interleave.Q4_KMins + 32 * p + 8 * q)).AsInt16();
                short s0 = (short)(bs[4 * p] + bs[4 * p + 1]), s1 = (short)(bs[4 * p + 2] + bs[4 * p + 3]);
                var sums = Vector64.Create(s0, s1, s0, s1);
                msum += AdvSimd.Arm64.AddPairwise(AdvSimd.MultiplyWideningLower(m.GetLower(), sums), AdvSimd.MultiplyWideningLower(m.GetUpper(), sums));
            }
            sum = AdvSimd.FusedMultiplyAdd(sum, AdvSimd.ConvertToSingle(isum), Scales4(g, q) * dx);
            return AdvSimd.FusedMultiplySubtract(sum, AdvSimd.ConvertToSingle(msum), Scales4(g + Interleave.Q4_KDMin, q) * dx);
        }
    }

    /// <summary>
    /// Q6_K rows 4q..4q+3, chunk jj = j0 + t of one half: the four quarters (BlockQ6_K bit positions) as signed
    /// q − 32, each against quadruplet t of its activation run, accumulated per quarter.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6Step(byte* ql, byte* qh, int jj, byte t, Vector128<sbyte> x1, Vector128<sbyte> x2, Vector128<sbyte> x3, Vector128<sbyte> x4,
        ref Vector128<int> s1, ref Vector128<int> s2, ref Vector128<int> s3, ref Vector128<int> s4)
    {
        var low4 = Vector128.Create((byte)0x0F);
        var bits45 = Vector128.Create((byte)0x30);
        var k32 = Vector128.Create((sbyte)32);
        var a = Vector128.Load(ql + 64 * jj); var b = Vector128.Load(ql + 64 * (8 + jj)); var c = Vector128.Load(qh + 64 * jj);
        var q1 = ((a & low4) | (AdvSimd.ShiftLeftLogical(c, 4) & bits45)).AsSByte() - k32;
        var q2 = ((b & low4) | (AdvSimd.ShiftLeftLogical(c, 2) & bits45)).AsSByte() - k32;
        var q3 = (AdvSimd.ShiftRightLogical(a, 4) | (c & bits45)).AsSByte() - k32;
        var q4 = (AdvSimd.ShiftRightLogical(b, 4) | (AdvSimd.ShiftRightLogical(c, 2) & bits45)).AsSByte() - k32;
        s1 = Dp.DotProductBySelectedQuadruplet(s1, q1, x1, t);
        s2 = Dp.DotProductBySelectedQuadruplet(s2, q2, x2, t);
        s3 = Dp.DotProductBySelectedQuadruplet(s3, q3, x3, t);
        s4 = Dp.DotProductBySelectedQuadruplet(s4, q4, x4, t);
    }

    /// <summary>Scale s (0..15) of rows 4q..4q+3 as int32 lanes (scale pairs: Interleave's Q6_K layout).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Q6Scales(byte* g, int q, int s)
    {
        sbyte* p = (sbyte*)g + Interleave.Q6_KScales + 32 * (s / 2) + 8 * q + s % 2;
        return Vector128.Create(p[0], p[2], p[4], p[6]);
    }

    /// <summary>Q6_K: sdot per 16 weights (one scale each), scales applied as int32 multiplies.</summary>
    private readonly struct Q6_KQuad4 : IQuad
    {
        public static DType Type => DType.Q6_K;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<float> Add(Vector128<float> sum, byte* g, int q, sbyte* x0, short* bs, Vector128<float> dx)
        {
            Vector128<int> isum = default;
            for (int h = 0; h < 2; h++)
            {
                sbyte* x = x0 + 128 * h;
                byte* ql = g + Interleave.Q6_KLow + 64 * 16 * h + 16 * q;
                byte* qh = g + Interleave.Q6_KHigh + 64 * 8 * h + 16 * q;
                for (int j0 = 0; j0 < 8; j0 += 4)                           // l < 16: scales 8h + 2i; l ≥ 16: 8h + 2i + 1
                {
                    Vector128<sbyte> x1 = Vector128.Load(x + 4 * j0), x2 = Vector128.Load(x + 32 + 4 * j0), x3 = Vector128.Load(x + 64 + 4 * j0), x4 = Vector128.Load(x + 96 + 4 * j0);
                    Vector128<int> s1 = default, s2 = default, s3 = default, s4 = default;
                    Q6Step(ql, qh, j0, 0, x1, x2, x3, x4, ref s1, ref s2, ref s3, ref s4);
                    Q6Step(ql, qh, j0 + 1, 1, x1, x2, x3, x4, ref s1, ref s2, ref s3, ref s4);
                    Q6Step(ql, qh, j0 + 2, 2, x1, x2, x3, x4, ref s1, ref s2, ref s3, ref s4);
                    Q6Step(ql, qh, j0 + 3, 3, x1, x2, x3, x4, ref s1, ref s2, ref s3, ref s4);
                    int s = 8 * h + j0 / 4;
                    isum += s1 * Q6Scales(g, q, s) + s2 * Q6Scales(g, q, s + 2) + s3 * Q6Scales(g, q, s + 4) + s4 * Q6Scales(g, q, s + 6);
                }
            }
            return AdvSimd.FusedMultiplyAdd(sum, AdvSimd.ConvertToSingle(isum), Scales4(g, q) * dx);
        }
    }

    /// <summary>Q8_0 rows 4q..4q+3: chunks 0-3 against the quadruplets of activations 0..15, chunks 4-7 of 16..31.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Q8_0Rows(byte* blk, int q, Vector128<sbyte> xlo, Vector128<sbyte> xhi)
    {
        sbyte* c = (sbyte*)blk + 32 + 16 * q;
        var p = Dp.DotProductBySelectedQuadruplet(Vector128<int>.Zero, Vector128.Load(c), xlo, 0);
        p = Dp.DotProductBySelectedQuadruplet(p, Vector128.Load(c + 64), xlo, 1);
        p = Dp.DotProductBySelectedQuadruplet(p, Vector128.Load(c + 128), xlo, 2);
        p = Dp.DotProductBySelectedQuadruplet(p, Vector128.Load(c + 192), xlo, 3);
        p = Dp.DotProductBySelectedQuadruplet(p, Vector128.Load(c + 256), xhi, 0);
        p = Dp.DotProductBySelectedQuadruplet(p, Vector128.Load(c + 320), xhi, 1);
        p = Dp.DotProductBySelectedQuadruplet(p, Vector128.Load(c + 384), xhi, 2);
        return Dp.DotProductBySelectedQuadruplet(p, Vector128.Load(c + 448), xhi, 3);
    }
}
