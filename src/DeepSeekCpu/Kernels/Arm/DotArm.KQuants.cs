using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.Arm;

// ARM64 bodies of Q2_K, Q3_K, Q5_1, IQ4_NL, MXFP4 and IQ4_XS (maths: Reference/DotReference.KQuants.cs), generic over the
// int8 dot flavour (sdot with DotProd, widening multiplies without). Q2_K and Q3_K share one body over their 2-bit
// runs of 16; the IQ4 (and MXFP4, INibbleGrid) levels come from one tbl lookup per 16 indices.
internal static unsafe partial class DotArm
{
    /// <summary>Q2_K (<paramref name="q3"/> false) and Q3_K: Σ over the 16 sub-blocks of sc_s·Σ q·y with unsigned
    /// levels (the 2-bit field, plus 4 where Q3_K's hmask bit is set), then the format's scales and offsets
    /// (<see cref="TwoBitSuperBlock"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float TwoBitK<TDot>(byte* w, ActQ8* a, bool q3) where TDot : IS8Dot
    {
        var three = Vector128.Create((byte)3);
        var one = Vector128.Create((byte)1);
        sbyte* scales = stackalloc sbyte[16];
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++)
        {
            var k = new TwoBitSuperBlock(w, b, q3, a->BSums + 16 * b, scales);
            sbyte* x = a->Q + 256 * b;
            int isum = 0;
            for (int h = 0; h < 2; h++)
                for (int half16 = 0; half16 < 2; half16++)
                {
                    var q = Vector128.Load(k.Qs + 32 * h + 16 * half16);
                    var hm = q3 ? Vector128.Load(k.HMask + 16 * half16) : default;
                    for (int j = 0; j < 4; j++)
                    {
                        int s = 8 * h + 2 * j + half16;
                        var v = Vector128.ShiftRightLogical(q, 2 * j) & three;
                        if (q3) v |= Vector128.ShiftLeft(Vector128.ShiftRightLogical(hm, 4 * h + j) & one, 2);
                        isum += Sum16<TDot>(v.AsSByte(), x + 16 * s) * scales[s];
                    }
                }
            sum += a->D[b] * (k.D * (isum - k.Offset) - k.Min);
        }
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q2_K<TDot>(byte* w, ActQ8* a) where TDot : IS8Dot => TwoBitK<TDot>(w, a, q3: false);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q3_K<TDot>(byte* w, ActQ8* a) where TDot : IS8Dot => TwoBitK<TDot>(w, a, q3: true);

    /// <summary>Q5_1: unsigned 5-bit q (fifth bit j of qh spread to byte j with tbl) and the min through d·Σq.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q5_1<TDot>(byte* w, ActQ8* a) where TDot : IS8Dot
    {
        var blk = (BlockQ5_1*)w;
        var mask = Vector128.Create((byte)0x0F);
        var bit4 = Vector128.Create((byte)0x10);
        var bitOf = Vector128.Create(0x8040201008040201ul).AsByte();
        var spreadLo = Vector128.Create(0x0101010101010101ul * 0, 0x0101010101010101ul * 1).AsByte();
        var spreadHi = Vector128.Create(0x0101010101010101ul * 2, 0x0101010101010101ul * 3).AsByte();
        var acc = Vector128<float>.Zero;
        float offset = 0;
        for (int b = 0; b < a->Cols / 32; b++, blk++)
        {
            var qh = Vector128.CreateScalar(*(uint*)blk->Qh).AsByte();
            var hLo = Vector128.Equals(AdvSimd.Arm64.VectorTableLookup(qh, spreadLo) & bitOf, bitOf) & bit4;
            var hHi = Vector128.Equals(AdvSimd.Arm64.VectorTableLookup(qh, spreadHi) & bitOf, bitOf) & bit4;
            var n = Vector128.Load(blk->Qs);
            var p = Dot32<TDot>(((n & mask) | hLo).AsSByte(), (AdvSimd.ShiftRightLogical(n, 4) | hHi).AsSByte(), a->Q + 32 * b);
            acc = AdvSimd.FusedMultiplyAdd(acc, AdvSimd.ConvertToSingle(p), Vector128.Create((float)blk->D * a->D[b]));
            offset += (float)blk->M * a->S[b];
        }
        return Vector128.Sum(acc) + offset;
    }

    /// <summary>Σ level·y over one IQ4 run of 32 (16 bytes of indices, low nibbles first) in 4 int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> IQ4Run<TDot>(byte* qs, sbyte* x, Vector128<sbyte> table) where TDot : IS8Dot
    {
        var n = Vector128.Load(qs);
        var lo = AdvSimd.Arm64.VectorTableLookup(table, (n & Vector128.Create((byte)0x0F)).AsSByte());
        var hi = AdvSimd.Arm64.VectorTableLookup(table, AdvSimd.ShiftRightLogical(n, 4).AsSByte());
        return Dot32<TDot>(lo, hi, x);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float IQ4_NL<TDot>(byte* w, ActQ8* a) where TDot : IS8Dot => NibbleGrid<IQ4_NLGrid, TDot>(w, a);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float MXFP4<TDot>(byte* w, ActQ8* a) where TDot : IS8Dot => NibbleGrid<MXFP4Grid, TDot>(w, a);

    /// <summary>One block per step: its levels by tbl, the signed dot, × scale·dy (<see cref="INibbleGrid"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float NibbleGrid<TGrid, TDot>(byte* w, ActQ8* a) where TGrid : INibbleGrid where TDot : IS8Dot
    {
        var table = Vector128.Create(TGrid.Values);
        var acc = Vector128<float>.Zero;
        for (int b = 0; b < a->Cols / 32; b++, w += TGrid.BlockBytes)
        {
            var p = IQ4Run<TDot>(w + TGrid.BlockBytes - 16, a->Q + 32 * b, table);
            acc = AdvSimd.FusedMultiplyAdd(acc, AdvSimd.ConvertToSingle(p), Vector128.Create(TGrid.Scale(w) * a->D[b]));
        }
        return Vector128.Sum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float IQ4_XS<TDot>(byte* w, ActQ8* a) where TDot : IS8Dot
    {
        var blk = (BlockIQ4_XS*)w;
        var table = Vector128.Create(IQ4NL.Values);
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++, blk++)
        {
            int sumi = 0;
            for (int ib = 0; ib < 8; ib++)
                sumi += AdvSimd.Arm64.AddAcross(IQ4Run<TDot>(blk->Qs + 16 * ib, a->Q + 256 * b + 32 * ib, table)).ToScalar() * IQ4NL.Scale(blk, ib);
            sum += (float)blk->D * a->D[b] * sumi;
        }
        return sum;
    }

    // ---------- float32 activations (ActivationPrecision.Float32) ----------

    /// <summary>MXFP4 row · float32 activations (ActivationPrecision.Float32; maths: DotReference.NibbleGridF32).</summary>
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
