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
            byte* ahead = g + PrefetchDistance;
            Sse.Prefetch0(ahead); Sse.Prefetch0(ahead + 64); Sse.Prefetch0(ahead + 128); Sse.Prefetch0(ahead + 192); Sse.Prefetch0(ahead + 256);
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
    private static Vector256<short> Chunk8(byte* chunk, Vector256<sbyte> xlo, Vector256<sbyte> xhi, Vector256<byte> low4)
    {
        var c = Vector256.Load(chunk);
        var lo = c & low4;
        var hi = Avx2.ShiftRightLogical(c.AsUInt16(), 4).AsByte() & low4;
        return Avx2.MultiplyAddAdjacent(lo, xlo) + Avx2.MultiplyAddAdjacent(hi, xhi);
    }

    /// <summary>Q4_0, 256-bit: the 16 rows as two halves of 8 sharing each activation broadcast.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q4_0Avx2(byte* g, ActQ8* a, float* y)
    {
        int nb = a->Cols / 32;
        int blockBytes = Interleave.BlockBytes(DType.Q4_0);
        sbyte* xq = a->Q;
        float* xd = a->D, xs = a->S;
        var low4 = Vector256.Create((byte)0x0F);
        Vector256<float> acc0 = default, acc1 = default, bias0 = default, bias1 = default;
        for (int b = 0; b < nb; b++, g += blockBytes, xq += 32)
        {
            byte* ahead = g + PrefetchDistance;
            Sse.Prefetch0(ahead); Sse.Prefetch0(ahead + 64); Sse.Prefetch0(ahead + 128); Sse.Prefetch0(ahead + 192); Sse.Prefetch0(ahead + 256);
            Vector256<short> s0 = default, s1 = default;
            for (int j = 0; j < 4; j++)
            {
                var xlo = Broadcast256(xq + 4 * j);
                var xhi = Broadcast256(xq + 16 + 4 * j);
                s0 += Chunk8(g + 32 + 64 * j, xlo, xhi, low4);
                s1 += Chunk8(g + 64 + 64 * j, xlo, xhi, low4);
            }
            var d0 = Scales8(g);
            var d1 = Scales8(g + 16);
            var dx = Vector256.Create(xd[b]);
            var sx = Vector256.Create(xs[b]);
            acc0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(s0, Vector256<short>.One)), d0 * dx, acc0);
            acc1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(s1, Vector256<short>.One)), d1 * dx, acc1);
            bias0 = Fma.MultiplyAdd(d0, sx, bias0);
            bias1 = Fma.MultiplyAdd(d1, sx, bias1);
        }
        (acc0 - bias0 * 8).Store(y);
        (acc1 - bias1 * 8).Store(y + 8);
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
            byte* ahead = g + PrefetchDistance;
            for (int l = 0; l < 9; l++) Sse.Prefetch0(ahead + 64 * l);
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
