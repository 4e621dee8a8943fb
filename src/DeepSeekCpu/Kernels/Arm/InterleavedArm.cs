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

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q4_0(byte* g, ActQ8* a, float* y)
    {
        int nb = a->Cols / 32, blockBytes = Interleave.BlockBytes(DType.Q4_0);
        Vector128<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        for (int b = 0; b < nb; b++, g += blockBytes)
        {
            var xlo = Vector128.Load(a->Q + 32 * b);
            var xhi = Vector128.Load(a->Q + 32 * b + 16);
            var dx = Vector128.Create(a->D[b]);
            acc0 = AdvSimd.FusedMultiplyAdd(acc0, AdvSimd.ConvertToSingle(Q4_0Rows(g, 0, xlo, xhi)), Scales4(g, 0) * dx);
            acc1 = AdvSimd.FusedMultiplyAdd(acc1, AdvSimd.ConvertToSingle(Q4_0Rows(g, 1, xlo, xhi)), Scales4(g, 1) * dx);
            acc2 = AdvSimd.FusedMultiplyAdd(acc2, AdvSimd.ConvertToSingle(Q4_0Rows(g, 2, xlo, xhi)), Scales4(g, 2) * dx);
            acc3 = AdvSimd.FusedMultiplyAdd(acc3, AdvSimd.ConvertToSingle(Q4_0Rows(g, 3, xlo, xhi)), Scales4(g, 3) * dx);
        }
        acc0.Store(y); acc1.Store(y + 4); acc2.Store(y + 8); acc3.Store(y + 12);
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

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q8_0(byte* g, ActQ8* a, float* y)
    {
        int nb = a->Cols / 32, blockBytes = Interleave.BlockBytes(DType.Q8_0);
        Vector128<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        for (int b = 0; b < nb; b++, g += blockBytes)
        {
            var xlo = Vector128.Load(a->Q + 32 * b);
            var xhi = Vector128.Load(a->Q + 32 * b + 16);
            var dx = Vector128.Create(a->D[b]);
            acc0 = AdvSimd.FusedMultiplyAdd(acc0, AdvSimd.ConvertToSingle(Q8_0Rows(g, 0, xlo, xhi)), Scales4(g, 0) * dx);
            acc1 = AdvSimd.FusedMultiplyAdd(acc1, AdvSimd.ConvertToSingle(Q8_0Rows(g, 1, xlo, xhi)), Scales4(g, 1) * dx);
            acc2 = AdvSimd.FusedMultiplyAdd(acc2, AdvSimd.ConvertToSingle(Q8_0Rows(g, 2, xlo, xhi)), Scales4(g, 2) * dx);
            acc3 = AdvSimd.FusedMultiplyAdd(acc3, AdvSimd.ConvertToSingle(Q8_0Rows(g, 3, xlo, xhi)), Scales4(g, 3) * dx);
        }
        acc0.Store(y); acc1.Store(y + 4); acc2.Store(y + 8); acc3.Store(y + 12);
    }
}
