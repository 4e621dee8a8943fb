using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DeepSeekCpu.Kernels.X86;

// Nibble-grid rows (MXFP4) · float32 activations (ActivationPrecision.Float32; maths: DotReference.NibbleGridF32): the
// levels are looked up in registers and multiplied in float32, the block's sum scaled once. Memory traffic stays
// 4.25 bits per weight; no activation is rounded.
internal static unsafe partial class DotX86
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float MXFP4F32Avx512(byte* w, float* x, int cols, float* scales) => GridF32Avx512<MXFP4Grid>(w, x, cols);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float MXFP4F32Avx2(byte* w, float* x, int cols, float* scales) => GridF32Avx2<MXFP4Grid>(w, x, cols);

    /// <summary>
    /// 512 bits: vpmovzxbd widens a block's 16 index bytes to 16 int32 lanes and vpermps, which reads only the low 4
    /// bits of each index, turns them into the low nibbles' float levels; after a shift by 4, the high nibbles'. Two
    /// blocks per step into two accumulators.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float GridF32Avx512<TGrid>(byte* w, float* x, int cols) where TGrid : INibbleGrid
    {
        var table = FloatLevels512<TGrid>();
        int nb = cols / 32, size = TGrid.BlockBytes, b = 0;
        Vector512<float> acc0 = Vector512<float>.Zero, acc1 = Vector512<float>.Zero;
        for (; b + 2 <= nb; b += 2)
        {
            byte* b0 = w + b * size;
            PrefetchAhead(b0, 1);
            acc0 = GridBlock512<TGrid>(b0, x + 32 * b, table, acc0);
            acc1 = GridBlock512<TGrid>(b0 + size, x + 32 * b + 32, table, acc1);
        }
        if (b < nb) acc0 = GridBlock512<TGrid>(w + b * size, x + 32 * b, table, acc0);
        return Vector512.Sum(acc0 + acc1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> GridBlock512<TGrid>(byte* blk, float* x, Vector512<float> table, Vector512<float> acc) where TGrid : INibbleGrid
    {
        var q = Avx512F.ConvertToVector512Int32(Vector128.Load(blk + TGrid.BlockBytes - 16));   // [16] index bytes
        var part = Avx512F.PermuteVar16x32(table, q) * Vector512.Load(x);                       // elements 0..15
        part = Vector512.FusedMultiplyAdd(Avx512F.PermuteVar16x32(table, Vector512.ShiftRightLogical(q, 4)), Vector512.Load(x + 16), part);
        return Vector512.FusedMultiplyAdd(part, Vector512.Create(TGrid.Scale(blk)), acc);
    }

    /// <summary>The 16 levels as float32 lanes.</summary>
    private static Vector512<float> FloatLevels512<TGrid>() where TGrid : INibbleGrid
    {
        float* levels = stackalloc float[16];
        for (int i = 0; i < 16; i++) levels[i] = TGrid.Values[i];
        return Vector512.Load(levels);
    }

    /// <summary>
    /// 256 bits: one vpshufb looks up all 32 levels of a block as int8 (low nibbles in the lower lane, high in the upper,
    /// which is element order), vpmovsxbd + vcvtdq2ps make 4 float vectors of 8.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float GridF32Avx2<TGrid>(byte* w, float* x, int cols) where TGrid : INibbleGrid
    {
        var levels = Vector128.Create(TGrid.Values);
        var table = Vector256.Create(levels, levels);
        var m4 = Vector128.Create((byte)0x0F);
        int size = TGrid.BlockBytes;
        Vector256<float> acc0 = Vector256<float>.Zero, acc1 = Vector256<float>.Zero;
        for (int b = 0; b < cols / 32; b++, w += size, x += 32)
        {
            PrefetchAhead(w, 1);
            var n = Vector128.Load(w + size - 16);
            var v = Avx2.Shuffle(table, Vector256.Create(n & m4, Vector128.ShiftRightLogical(n, 4) & m4).AsSByte());   // [32] levels
            Vector128<sbyte> lo = v.GetLower(), hi = v.GetUpper();
            var p0 = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(lo)) * Vector256.Load(x);
            var p1 = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(lo, 8))) * Vector256.Load(x + 8);
            p0 = Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(hi)), Vector256.Load(x + 16), p0);
            p1 = Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(hi, 8))), Vector256.Load(x + 24), p1);
            var scale = Vector256.Create(TGrid.Scale(w));
            acc0 = Vector256.FusedMultiplyAdd(p0, scale, acc0);
            acc1 = Vector256.FusedMultiplyAdd(p1, scale, acc1);
        }
        return Vector256.Sum(acc0 + acc1);
    }
}
