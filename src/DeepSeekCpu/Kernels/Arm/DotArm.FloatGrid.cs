using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;

namespace DeepSeekCpu.Kernels.Arm;

// Nibble-grid rows (MXFP4) · float32 activations (ActivationPrecision.Float32; maths: DotReference.NibbleGridF32).
internal static unsafe partial class DotArm
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float MXFP4F32(byte* w, float* x, int cols, float* scales) => GridF32<MXFP4Grid>(w, x, cols);

    /// <summary>
    /// Per block: tbl looks up the 16 low and 16 high nibbles' int8 levels, sxtl twice and scvtf make float lanes, 8
    /// fmla with the activations into two partial sums, × the block's scale.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float GridF32<TGrid>(byte* w, float* x, int cols) where TGrid : INibbleGrid
    {
        var table = Vector128.Create(TGrid.Values);
        var m4 = Vector128.Create((byte)0x0F);
        int size = TGrid.BlockBytes;
        var acc = Vector128<float>.Zero;
        for (int b = 0; b < cols / 32; b++, w += size, x += 32)
        {
            var n = Vector128.Load(w + size - 16);
            var lo = AdvSimd.Arm64.VectorTableLookup(table, (n & m4).AsSByte());               // elements 0..15
            var hi = AdvSimd.Arm64.VectorTableLookup(table, AdvSimd.ShiftRightLogical(n, 4).AsSByte());   // 16..31
            var p0 = Levels16(Vector128<float>.Zero, lo, x);
            var p1 = Levels16(Vector128<float>.Zero, hi, x + 16);
            acc = AdvSimd.FusedMultiplyAdd(acc, p0 + p1, Vector128.Create(TGrid.Scale(w)));
        }
        return Vector128.Sum(acc);
    }

    /// <summary>acc + Σ over 16 int8 levels · x, in 4 float lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Levels16(Vector128<float> acc, Vector128<sbyte> v, float* x)
    {
        var s0 = AdvSimd.SignExtendWideningLower(v.GetLower());       // [8] int16
        var s1 = AdvSimd.SignExtendWideningUpper(v);
        acc = AdvSimd.FusedMultiplyAdd(acc, AdvSimd.ConvertToSingle(AdvSimd.SignExtendWideningLower(s0.GetLower())), Vector128.Load(x));
        acc = AdvSimd.FusedMultiplyAdd(acc, AdvSimd.ConvertToSingle(AdvSimd.SignExtendWideningUpper(s0)), Vector128.Load(x + 4));
        acc = AdvSimd.FusedMultiplyAdd(acc, AdvSimd.ConvertToSingle(AdvSimd.SignExtendWideningLower(s1.GetLower())), Vector128.Load(x + 8));
        return AdvSimd.FusedMultiplyAdd(acc, AdvSimd.ConvertToSingle(AdvSimd.SignExtendWideningUpper(s1)), Vector128.Load(x + 12));
    }
}
