using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DeepSeekCpu.Kernels.Repack;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.X86;

/// <summary>
/// x86 dot products of one interleaved group of 16 rows (<see cref="Interleave"/>) with one token's activations
/// (see <see cref="Reference.InterleavedReference"/> for the maths). Each 32-bit lane is one row: 4 activation bytes
/// are broadcast to every lane and meet 4 bytes of each row, so a 64-byte weight load feeds 64 multiplies with no
/// shuffle, the 16 rows' scales are one 32-byte load, and nothing is summed horizontally.
/// </summary>
internal static unsafe class InterleavedX86
{
    /// <summary>Prefetch distance (bytes) and its reason: as DotX86.PrefetchDistance, the next 2 KB requested while a block computes.</summary>
    private const int PrefetchDistance = 2048;

    /// <summary>
    /// A half's bits, sign-extended to 32, shifted into a float's field positions give the half's value × 2^-112
    /// exactly (the exponent biases differ by 112): one shift and one mask; the × 2^112 is folded into the scale
    /// multiply that follows (<see cref="HalfBias"/>).
    /// </summary>
    private const int HalfFieldMask = unchecked((int)0x8FFF_E000);
    private static float HalfBias => BitConverter.Int32BitsToSingle((127 + 112) << 23);   // 2^112

    /// <summary>Requests the <paramref name="lines"/> cache lines <see cref="PrefetchDistance"/> past <paramref name="p"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchAhead(byte* p, int lines)
    {
        for (int l = 0; l < lines; l++) Sse.Prefetch0(p + PrefetchDistance + 64 * l);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<sbyte> Broadcast512(sbyte* p) => Vector512.Create(*(int*)p).AsSByte();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> Broadcast256(sbyte* p) => Vector256.Create(*(int*)p).AsSByte();

    /// <summary>16 rows' Q4_0 scales (halves) as floats, exact.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Scales16(byte* blk)
    {
        var h = Avx512F.ConvertToVector512Int32(Vector256.Load((short*)blk));
        return (Vector512.ShiftLeft(h, 13) & Vector512.Create(HalfFieldMask)).AsSingle() * Vector512.Create(HalfBias);
    }

    /// <summary>8 rows' scales (halves) as floats, exact.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Scales8(byte* blk)
    {
        var h = Avx2.ConvertToVector256Int32(Vector128.Load((short*)blk));
        return (Vector256.ShiftLeft(h, 13) & Vector256.Create(HalfFieldMask)).AsSingle() * Vector256.Create(HalfBias);
    }

    /// <summary>
    /// Q4_0 chunk j of 16 rows (64 bytes) against activations 4j..4j+3 (low nibbles) and 16+4j.. (high nibbles):
    /// vpmaddubsw pairs in int16 (|pair| ≤ 2·15·127; the 8 pairs of a block summed stay below 2^15).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> Chunk(byte* chunk, sbyte* x, Vector512<byte> low4)
    {
        var c = Vector512.Load(chunk);
        var lo = c & low4;
        var hi = Avx512BW.ShiftRightLogical(c.AsUInt16(), 4).AsByte() & low4;
        return Avx512BW.MultiplyAddAdjacent(lo, Broadcast512(x)) + Avx512BW.MultiplyAddAdjacent(hi, Broadcast512(x + 16));
    }

    /// <summary>
    /// Q4_0, 512-bit: per block, 4 loads of 64 bytes, 8 vpmaddubsw, one vpmaddwd, one convert and one FMA for 16 rows.
    /// Unsigned nibbles: Σ (q − 8)·x = Σ q·x − 8·Σ x, with d_x·Σ x the activations' S.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q4_0Avx512(byte* g, ActQ8* a, float* y)
    {
        int nb = a->Cols / 32;
        int blockBytes = Interleave.BlockBytes(DType.Q4_0);
        sbyte* xq = a->Q;
        float* xd = a->D, xs = a->S;
        var low4 = Vector512.Create((byte)0x0F);
        Vector512<float> acc = default, bias = default;
        for (int b = 0; b < nb; b++, g += blockBytes, xq += 32)
        {
            PrefetchAhead(g, 5);                                        // 288 bytes
            var dw = Scales16(g);
            var s = (Chunk(g + 32, xq, low4) + Chunk(g + 96, xq + 4, low4)) + (Chunk(g + 160, xq + 8, low4) + Chunk(g + 224, xq + 12, low4));
            var p = Avx512BW.MultiplyAddAdjacent(s, Vector512<short>.One);
            acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(p), dw * xd[b], acc);
            bias = Avx512F.FusedMultiplyAdd(dw, Vector512.Create(xs[b]), bias);
        }
        (acc - bias * 8).Store(y);
    }

    /// <summary>As <see cref="Chunk"/> for 8 rows (one half of a 64-byte chunk).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Chunk8(Vector256<byte> c, sbyte* x, Vector256<byte> low4) =>
        Avx2.MultiplyAddAdjacent(c & low4, Broadcast256(x)) + Avx2.MultiplyAddAdjacent(Avx2.ShiftRightLogical(c.AsUInt16(), 4).AsByte() & low4, Broadcast256(x + 16));

    /// <summary>Q4_0, 256-bit: the 16 rows as two halves of 8 (the second pass finds the group and activations in L1).</summary>
    public static void Q4_0Avx2(byte* g, ActQ8* a, float* y)
    {
        Q4_0Rows8(g, a, 0).Store(y);
        Q4_0Rows8(g, a, 1).Store(y + 8);
    }

    /// <summary>Rows 8h..8h+7 of a Q4_0 group: scales at 16h, chunk columns at 32h.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static Vector256<float> Q4_0Rows8(byte* g, ActQ8* a, int h)
    {
        var low4 = Vector256.Create((byte)0x0F);
        Vector256<float> acc = default, bias = default;
        for (int b = 0; b < a->Cols / 32; b++, g += Interleave.BlockBytes(DType.Q4_0))
        {
            if (h == 0) PrefetchAhead(g, 5);                               // 288 bytes
            sbyte* x = a->Q + 32 * b;
            byte* c = g + 32 + 32 * h;
            var s = (Chunk8(Vector256.Load(c), x, low4) + Chunk8(Vector256.Load(c + 64), x + 4, low4))
                  + (Chunk8(Vector256.Load(c + 128), x + 8, low4) + Chunk8(Vector256.Load(c + 192), x + 12, low4));
            var d = Scales8(g + 16 * h);
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(s, Vector256<short>.One)), d * a->D[b], acc);
            bias = Fma.MultiplyAdd(d, Vector256.Create(a->S[b]), bias);
        }
        return acc - bias * 8;
    }

    /// <summary>16 rows' 6-bit sub-block scales (16 bytes) as int16 pairs: each row's scale in both halves of its int32 lane, for vpmaddwd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> ScalePairs16(byte* p)
    {
        var s = Avx512F.ConvertToVector512Int32(Vector128.Load(p));
        return (s | Vector512.ShiftLeft(s, 16)).AsInt16();
    }

    /// <summary>The int16 sums of two adjacent 16-element activation groups (ggml's bsums) of sub-blocks 2p and 2p+1, as one int16 pair.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int BSumPair(short* bs, int p) =>
        (ushort)(short)(bs[4 * p] + bs[4 * p + 1]) | (int)((uint)(ushort)(short)(bs[4 * p + 2] + bs[4 * p + 3]) << 16);

    /// <summary>
    /// Q4_K, 512-bit, per super-block of 16 rows: per pair of sub-blocks 8 chunks (vpmaddubsw of low and high nibbles
    /// summed in int16: 8 pairs ≤ 8·2·15·127 &lt; 2^15), one vpmaddwd each against the rows' scales; the mins term is
    /// 4 vpmaddwd of the row's min pairs against the activation sums. Two FMAs per super-block.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q4_KAvx512(byte* g, ActQ8* a, float* y)
    {
        int nb = a->Cols / 256;
        int blockBytes = Interleave.BlockBytes(DType.Q4_K);
        var low4 = Vector512.Create((byte)0x0F);
        Vector512<float> acc = default, accMin = default;
        for (int b = 0; b < nb; b++, g += blockBytes)
        {
            sbyte* x = a->Q + 256 * b;
            short* bs = a->BSums + 16 * b;
            var isum = Vector512<int>.Zero;
            for (int p = 0; p < 4; p++, x += 64)
            {
                byte* c = g + Interleave.Q4_KQuants + 512 * p;
                Vector512<short> lo = default, hi = default;
                for (int j = 0; j < 8; j++, c += 64)
                {
                    PrefetchAhead(c, 1);
                    var v = Vector512.Load(c);
                    lo += Avx512BW.MultiplyAddAdjacent(v & low4, Broadcast512(x + 4 * j));
                    hi += Avx512BW.MultiplyAddAdjacent(Avx512BW.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & low4, Broadcast512(x + 32 + 4 * j));
                }
                isum += Avx512BW.MultiplyAddAdjacent(lo, ScalePairs16(g + Interleave.Q4_KScales + 32 * p))
                      + Avx512BW.MultiplyAddAdjacent(hi, ScalePairs16(g + Interleave.Q4_KScales + 32 * p + 16));
            }
            var msum = Vector512<int>.Zero;
            for (int p = 0; p < 4; p++)
                msum += Avx512BW.MultiplyAddAdjacent(Avx512BW.ConvertToVector512Int16(Vector256.Load(g + Interleave.Q4_KMins + 32 * p)), Vector512.Create(BSumPair(bs, p)).AsInt16());
            var dx = Vector512.Create(a->D[b]);
            acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum), Scales16(g) * dx, acc);
            accMin = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(msum), Scales16(g + Interleave.Q4_KDMin) * dx, accMin);
        }
        (acc - accMin).Store(y);
    }

    /// <summary>8 rows' sub-block scales (8 bytes) as int16 pairs (see <see cref="ScalePairs16"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> ScalePairs8(byte* p)
    {
        var s = Avx2.ConvertToVector256Int32(p);
        return (s | Vector256.ShiftLeft(s, 16)).AsInt16();
    }

    /// <summary>Q4_K, 256-bit: <see cref="Q4_KAvx512"/> on the two halves of 8 rows, sharing each activation broadcast.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q4_KAvx2(byte* g, ActQ8* a, float* y)
    {
        int nb = a->Cols / 256;
        int blockBytes = Interleave.BlockBytes(DType.Q4_K);
        var low4 = Vector256.Create((byte)0x0F);
        Vector256<float> acc0 = default, acc1 = default, min0 = default, min1 = default;
        for (int b = 0; b < nb; b++, g += blockBytes)
        {
            sbyte* x = a->Q + 256 * b;
            short* bs = a->BSums + 16 * b;
            Vector256<int> isum0 = default, isum1 = default;
            for (int p = 0; p < 4; p++, x += 64)
            {
                byte* c = g + Interleave.Q4_KQuants + 512 * p;
                Vector256<short> lo0 = default, hi0 = default, lo1 = default, hi1 = default;
                for (int j = 0; j < 8; j++, c += 64)
                {
                    PrefetchAhead(c, 1);
                    var xl = Broadcast256(x + 4 * j);
                    var xh = Broadcast256(x + 32 + 4 * j);
                    var v0 = Vector256.Load(c);
                    var v1 = Vector256.Load(c + 32);
                    lo0 += Avx2.MultiplyAddAdjacent(v0 & low4, xl);
                    hi0 += Avx2.MultiplyAddAdjacent(Avx2.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & low4, xh);
                    lo1 += Avx2.MultiplyAddAdjacent(v1 & low4, xl);
                    hi1 += Avx2.MultiplyAddAdjacent(Avx2.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & low4, xh);
                }
                byte* sc = g + Interleave.Q4_KScales + 32 * p;
                isum0 += Avx2.MultiplyAddAdjacent(lo0, ScalePairs8(sc)) + Avx2.MultiplyAddAdjacent(hi0, ScalePairs8(sc + 16));
                isum1 += Avx2.MultiplyAddAdjacent(lo1, ScalePairs8(sc + 8)) + Avx2.MultiplyAddAdjacent(hi1, ScalePairs8(sc + 24));
            }
            Vector256<int> msum0 = default, msum1 = default;
            for (int p = 0; p < 4; p++)
            {
                var pair = Vector256.Create(BSumPair(bs, p)).AsInt16();
                byte* m = g + Interleave.Q4_KMins + 32 * p;
                msum0 += Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(m), pair);
                msum1 += Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(m + 16), pair);
            }
            var dx = Vector256.Create(a->D[b]);
            acc0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(isum0), Scales8(g) * dx, acc0);
            acc1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(isum1), Scales8(g + 16) * dx, acc1);
            min0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(msum0), Scales8(g + Interleave.Q4_KDMin) * dx, min0);
            min1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(msum1), Scales8(g + Interleave.Q4_KDMin + 16) * dx, min1);
        }
        (acc0 - min0).Store(y);
        (acc1 - min1).Store(y + 8);
    }

    /// <summary>
    /// The four 6-bit quarters of Q6_K chunk jj of half h for 8 rows (BlockQ6_K): low nibbles of ql[l] and ql[l+32]
    /// with qh bits 0-1 and 2-3, high nibbles with bits 4-5 and 6-7 (16-bit shifts; the bits shifted in from the
    /// neighbour byte are masked off).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<byte>, Vector256<byte>, Vector256<byte>, Vector256<byte>) Q6Quarters8(byte* ql0, byte* ql1, byte* qh)
    {
        var low4 = Vector256.Create((byte)0x0F);
        var bits45 = Vector256.Create((byte)0x30);
        var a = Vector256.Load(ql0); var b = Vector256.Load(ql1); var c = Vector256.Load(qh).AsUInt16();
        return ((a & low4) | (Vector256.ShiftLeft(c, 4).AsByte() & bits45),
                (b & low4) | (Vector256.ShiftLeft(c, 2).AsByte() & bits45),
                (Vector256.ShiftRightLogical(a.AsUInt16(), 4).AsByte() & low4) | (c.AsByte() & bits45),
                (Vector256.ShiftRightLogical(b.AsUInt16(), 4).AsByte() & low4) | (Vector256.ShiftRightLogical(c, 2).AsByte() & bits45));
    }

    /// <summary>8 rows (<paramref name="half"/> 0 or 1 of the group) of one Q6_K super-block: Σ scale·q·x − 32·Σ scale·bsum, int32 per row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q6_KRows8(byte* g, int half, sbyte* x0, short* bs, Vector256<byte> even, Vector256<byte> odd)
    {
        Vector256<int> isum = default, bias = default;
        for (int h = 0; h < 2; h++)
        {
            sbyte* x = x0 + 128 * h;
            byte* ql = g + Interleave.Q6_KLow + 64 * 16 * h + 32 * half;
            byte* qh = g + Interleave.Q6_KHigh + 64 * 8 * h + 32 * half;
            sbyte* sp = (sbyte*)g + Interleave.Q6_KScales + 32 * 4 * h + 16 * half;
            var p0 = Avx2.ConvertToVector256Int16(sp); var p1 = Avx2.ConvertToVector256Int16(sp + 32);
            var p2 = Avx2.ConvertToVector256Int16(sp + 64); var p3 = Avx2.ConvertToVector256Int16(sp + 96);
            bias += Avx2.MultiplyAddAdjacent(p0, Vector256.Create(*(int*)(bs + 8 * h)).AsInt16())
                  + Avx2.MultiplyAddAdjacent(p1, Vector256.Create(*(int*)(bs + 8 * h + 2)).AsInt16())
                  + Avx2.MultiplyAddAdjacent(p2, Vector256.Create(*(int*)(bs + 8 * h + 4)).AsInt16())
                  + Avx2.MultiplyAddAdjacent(p3, Vector256.Create(*(int*)(bs + 8 * h + 6)).AsInt16());
            for (int jp = 0; jp < 4; jp++)
            {
                Vector256<short> s1 = default, s2 = default, s3 = default, s4 = default;
                for (int jj = 2 * jp; jj < 2 * jp + 2; jj++)
                {
                    PrefetchAhead(ql + 64 * jj, 1);
                    var (q1, q2, q3, q4) = Q6Quarters8(ql + 64 * jj, ql + 64 * (8 + jj), qh + 64 * jj);
                    s1 += Avx2.MultiplyAddAdjacent(q1, Broadcast256(x + 4 * jj));
                    s2 += Avx2.MultiplyAddAdjacent(q2, Broadcast256(x + 32 + 4 * jj));
                    s3 += Avx2.MultiplyAddAdjacent(q3, Broadcast256(x + 64 + 4 * jj));
                    s4 += Avx2.MultiplyAddAdjacent(q4, Broadcast256(x + 96 + 4 * jj));
                }
                var pick = jp < 2 ? even : odd;
                isum += Avx2.MultiplyAddAdjacent(s1, Avx2.Shuffle(p0.AsByte(), pick).AsInt16())
                      + Avx2.MultiplyAddAdjacent(s2, Avx2.Shuffle(p1.AsByte(), pick).AsInt16())
                      + Avx2.MultiplyAddAdjacent(s3, Avx2.Shuffle(p2.AsByte(), pick).AsInt16())
                      + Avx2.MultiplyAddAdjacent(s4, Avx2.Shuffle(p3.AsByte(), pick).AsInt16());
            }
        }
        return isum - Vector256.ShiftLeft(bias, 5);
    }

    /// <summary>
    /// Q6_K, 256-bit (AVX2 paths only: on AVX-512 the 512-bit row body over the stored layout was faster), the two
    /// halves of 8 rows: unsigned 6-bit quants (the −32 is applied once:
    /// −32·Σ scale·bsum by vpmaddwd of the scale pairs against the activations' sums); two chunks' vpmaddubsw summed
    /// in int16 (2·2·63·127 &lt; 2^15), then one vpmaddwd against the rows' scale for those 16 weights.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q6_KAvx2(byte* g, ActQ8* a, float* y)
    {
        int nb = a->Cols / 256;
        int blockBytes = Interleave.BlockBytes(DType.Q6_K);
        var even = Vector256.Create((byte)0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13);
        var odd = even + Vector256.Create((byte)2);
        Vector256<float> acc0 = default, acc1 = default;
        for (int b = 0; b < nb; b++, g += blockBytes)
        {
            sbyte* x = a->Q + 256 * b;
            short* bs = a->BSums + 16 * b;
            var dx = Vector256.Create(a->D[b]);
            acc0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Q6_KRows8(g, 0, x, bs, even, odd)), Scales8(g) * dx, acc0);
            acc1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Q6_KRows8(g, 1, x, bs, even, odd)), Scales8(g + 16) * dx, acc1);
        }
        acc0.Store(y);
        acc1.Store(y + 8);
    }

    /// <summary>Signed weights × signed activations by the sign trick: |w| (unsigned) × (x with w's sign).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> SignedDot<TDot>(Vector256<sbyte> w, Vector256<sbyte> x) where TDot : IU8S8Dot =>
        TDot.Dot(Avx2.Abs(w), Avx2.Sign(x, w));

    /// <summary>
    /// Q8_0, 256-bit (on AVX-512 machines too: with AVX-VNNI these are the "two 256-bit vpdpbusd" of a 512-bit step):
    /// 8 chunks per block, each two halves of 8 rows against one broadcast; int32 lanes need no int16 stage.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q8_0<TDot>(byte* g, ActQ8* a, float* y) where TDot : IU8S8Dot
    {
        int nb = a->Cols / 32;
        int blockBytes = Interleave.BlockBytes(DType.Q8_0);
        sbyte* xq = a->Q;
        float* xd = a->D;
        Vector256<float> acc0 = default, acc1 = default;
        for (int b = 0; b < nb; b++, g += blockBytes, xq += 32)
        {
            PrefetchAhead(g, 9);                                        // 544 bytes
            Vector256<int> p0 = default, p1 = default;
            for (int j = 0; j < 8; j++)
            {
                var x = Broadcast256(xq + 4 * j);
                p0 += SignedDot<TDot>(Vector256.Load((sbyte*)g + 32 + 64 * j), x);
                p1 += SignedDot<TDot>(Vector256.Load((sbyte*)g + 64 + 64 * j), x);
            }
            var dx = Vector256.Create(xd[b]);
            acc0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p0), Scales8(g) * dx, acc0);
            acc1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p1), Scales8(g + 16) * dx, acc1);
        }
        acc0.Store(y);
        acc1.Store(y + 8);
    }
}
