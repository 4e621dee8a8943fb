using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.Arm;

// ARM64 bodies of Q2_K, Q3_K, Q5_1, IQ4_NL and IQ4_XS (maths: Reference/DotReference.KQuants.cs), generic over the
// int8 dot flavour (sdot with DotProd, widening multiplies without). Q2_K and Q3_K share one body over their 2-bit
// runs of 16; the IQ4 levels come from one tbl lookup per 16 indices.
internal static unsafe partial class DotArm
{
    /// <summary>
    /// Σ over the 16 sub-blocks of a Q2_K/Q3_K super-block of scales16[s]·Σ (q − offset)·y, q = the 2-bit field plus
    /// 4 where the sub-block's bit of <paramref name="hmask"/> is set (Q3_K, offset 4; Q2_K: null, offset 0).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int TwoBitRuns<TDot>(byte* qs, byte* hmask, sbyte* x, sbyte* scales16, byte offset) where TDot : IS8Dot
    {
        var three = Vector128.Create((byte)3);
        var one = Vector128.Create((byte)1);
        var off = Vector128.Create(offset);
        int sumi = 0;
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 2; k++)
            {
                var q = Vector128.Load(qs + 32 * h + 16 * k);
                var hm = hmask == null ? default : Vector128.Load(hmask + 16 * k);
                for (int j = 0; j < 4; j++)
                {
                    int s = 8 * h + 2 * j + k;
                    var v = Vector128.ShiftRightLogical(q, 2 * j) & three;
                    if (hmask != null) v |= Vector128.ShiftLeft(Vector128.ShiftRightLogical(hm, 4 * h + j) & one, 2);
                    sumi += Sum16<TDot>((v - off).AsSByte(), x + 16 * s) * scales16[s];
                }
            }
        return sumi;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q2_K<TDot>(byte* w, ActQ8* a) where TDot : IS8Dot
    {
        var blk = (BlockQ2_K*)w;
        sbyte* scales = stackalloc sbyte[16];
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++, blk++)
        {
            short* bs = a->BSums + 16 * b;
            int summ = 0;
            for (int s = 0; s < 16; s++) summ += (blk->Scales[s] >> 4) * bs[s];
            (Vector128.Load(blk->Scales) & Vector128.Create((byte)0x0F)).AsSByte().Store(scales);
            int sumi = TwoBitRuns<TDot>(blk->Qs, null, a->Q + 256 * b, scales, 0);
            sum += (float)blk->D * a->D[b] * sumi - (float)blk->DMin * a->D[b] * summ;
        }
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q3_K<TDot>(byte* w, ActQ8* a) where TDot : IS8Dot
    {
        var blk = (BlockQ3_K*)w;
        sbyte* scales = stackalloc sbyte[16];
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++, blk++)
        {
            Q3KScales.Unpack(blk->Scales, scales);
            int sumi = TwoBitRuns<TDot>(blk->Qs, blk->HMask, a->Q + 256 * b, scales, 4);
            sum += (float)blk->D * a->D[b] * sumi;
        }
        return sum;
    }

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
    public static float IQ4_NL<TDot>(byte* w, ActQ8* a) where TDot : IS8Dot
    {
        var blk = (BlockIQ4_NL*)w;
        var table = Vector128.Create(IQ4NL.Values);
        var acc = Vector128<float>.Zero;
        for (int b = 0; b < a->Cols / 32; b++, blk++)
        {
            var p = IQ4Run<TDot>(blk->Qs, a->Q + 32 * b, table);
            acc = AdvSimd.FusedMultiplyAdd(acc, AdvSimd.ConvertToSingle(p), Vector128.Create((float)blk->D * a->D[b]));
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
}
