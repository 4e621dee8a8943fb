using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.Arm;

/// <summary>s8 × s8 dot product of 16 bytes accumulated into 4 int32 lanes (which lane holds which product differs
/// between flavours; only lane sums are used).</summary>
internal interface IS8Dot
{
    static abstract Vector128<int> Dot(Vector128<int> acc, Vector128<sbyte> a, Vector128<sbyte> b);
}

/// <summary>ARMv8.2 dot-product extension: sdot.</summary>
internal readonly struct SdotDot : IS8Dot
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Dot(Vector128<int> acc, Vector128<sbyte> a, Vector128<sbyte> b) => Dp.DotProduct(acc, a, b);
}

/// <summary>Without Dp: smull/smlal2 to int16 (|a·b + a'·b'| ≤ 2·128·127 fits) then sadalp into int32.</summary>
internal readonly struct WideningDot : IS8Dot
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Dot(Vector128<int> acc, Vector128<sbyte> a, Vector128<sbyte> b)
    {
        var p = AdvSimd.MultiplyWideningLower(a.GetLower(), b.GetLower());
        p = AdvSimd.MultiplyWideningUpperAndAdd(p, a, b);
        return AdvSimd.AddPairwiseWideningAndAdd(acc, p);
    }
}

/// <summary>ARM64 AdvSimd dot products of one quantized weight row with quantized activations (maths: DotReference).</summary>
internal static unsafe partial class DotArm
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Dot32<TDot>(Vector128<sbyte> w0, Vector128<sbyte> w1, sbyte* x) where TDot : IS8Dot =>
        TDot.Dot(TDot.Dot(Vector128<int>.Zero, w0, Vector128.Load(x)), w1, Vector128.Load(x + 16));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q8_0<TDot>(byte* w, ActQ8* a) where TDot : IS8Dot
    {
        var blk = (BlockQ8_0*)w;
        var acc = Vector128<float>.Zero;
        for (int b = 0; b < a->Cols / 32; b++, blk++)
        {
            var p = Dot32<TDot>(Vector128.Load(blk->Qs), Vector128.Load(blk->Qs + 16), a->Q + 32 * b);
            acc = AdvSimd.FusedMultiplyAdd(acc, AdvSimd.ConvertToSingle(p), Vector128.Create((float)blk->D * a->D[b]));
        }
        return Vector128.Sum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q4_0<TDot>(byte* w, ActQ8* a) where TDot : IS8Dot
    {
        var blk = (BlockQ4_0*)w;
        var acc = Vector128<float>.Zero;
        var mask = Vector128.Create((byte)0x0F);
        var eight = Vector128.Create((sbyte)8);
        for (int b = 0; b < a->Cols / 32; b++, blk++)
        {
            var n = Vector128.Load(blk->Qs);
            var lo = (n & mask).AsSByte() - eight;
            var hi = AdvSimd.ShiftRightLogical(n, 4).AsSByte() - eight;
            var p = Dot32<TDot>(lo, hi, a->Q + 32 * b);
            acc = AdvSimd.FusedMultiplyAdd(acc, AdvSimd.ConvertToSingle(p), Vector128.Create((float)blk->D * a->D[b]));
        }
        return Vector128.Sum(acc);
    }

    public static float Q4_K<TDot>(byte* w, ActQ8* a) where TDot : IS8Dot => K4<TDot, Q4_KLayout>(w, a);

    public static float Q5_K<TDot>(byte* w, ActQ8* a) where TDot : IS8Dot => K4<TDot, Q5_KLayout>(w, a);

    /// <summary>Q4_K and Q5_K (<see cref="IK4Layout"/>; Q5_K's fifth bits, bit 2g / 2g+1 of qh for the low / high
    /// nibbles of group g, become 0x10).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float K4<TDot, TK>(byte* w, ActQ8* a) where TDot : IS8Dot where TK : IK4Layout
    {
        uint* sm = stackalloc uint[4];
        byte* scales = (byte*)sm, mins = scales + 8;
        var mask = Vector128.Create((byte)0x0F);
        var bit4 = Vector128.Create((byte)0x10);
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++, w += TK.BlockBytes)
        {
            var blk = (BlockQ4_K*)w;                      // D, DMin, Scales: the same offsets in Q5_K
            byte* qs = w + TK.QsOffset;
            KQuant.UnpackScalesMins(blk->Scales, sm);
            sbyte* x = a->Q + 256 * b;
            short* bs = a->BSums + 16 * b;
            int summ = 0, sumi = 0;
            for (int j = 0; j < 8; j++) summ += mins[j] * (bs[2 * j] + bs[2 * j + 1]);
            for (int g = 0; g < 4; g++)
            {
                var q0 = Vector128.Load(qs + 32 * g);
                var q1 = Vector128.Load(qs + 32 * g + 16);
                var lo0 = q0 & mask;
                var lo1 = q1 & mask;
                var hi0 = AdvSimd.ShiftRightLogical(q0, 4);
                var hi1 = AdvSimd.ShiftRightLogical(q1, 4);
                if (TK.HasQh)
                {
                    byte* qh = ((BlockQ5_K*)w)->Qh;
                    var mLo = Vector128.Create((byte)(1 << (2 * g)));
                    var mHi = Vector128.Create((byte)(2 << (2 * g)));
                    var qh0 = Vector128.Load(qh);
                    var qh1 = Vector128.Load(qh + 16);
                    lo0 |= Vector128.Equals(qh0 & mLo, mLo) & bit4;
                    lo1 |= Vector128.Equals(qh1 & mLo, mLo) & bit4;
                    hi0 |= Vector128.Equals(qh0 & mHi, mHi) & bit4;
                    hi1 |= Vector128.Equals(qh1 & mHi, mHi) & bit4;
                }
                var lo = Dot32<TDot>(lo0.AsSByte(), lo1.AsSByte(), x + 64 * g);
                var hi = Dot32<TDot>(hi0.AsSByte(), hi1.AsSByte(), x + 64 * g + 32);
                sumi += AdvSimd.Arm64.AddAcross(lo).ToScalar() * scales[2 * g] + AdvSimd.Arm64.AddAcross(hi).ToScalar() * scales[2 * g + 1];
            }
            sum += (float)blk->D * a->D[b] * sumi - (float)blk->DMin * a->D[b] * summ;
        }
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q6_K<TDot>(byte* w, ActQ8* a) where TDot : IS8Dot
    {
        var blk = (BlockQ6_K*)w;
        var m4 = Vector128.Create((byte)0x0F);
        var m3 = Vector128.Create((byte)0x30);
        var offset = Vector128.Create((sbyte)32);
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++, blk++)
        {
            sbyte* x = a->Q + 256 * b;
            int sumi = 0;
            for (int half = 0; half < 2; half++)
            {
                byte* ql = blk->Ql + 64 * half;
                byte* qhp = blk->Qh + 32 * half;
                sbyte* s = blk->Scales + 8 * half;
                sbyte* xh = x + 128 * half;
                // 16 elements at a time: i = 0 for elements l 0..15, 1 for 16..31 of each quarter.
                for (int i = 0; i < 2; i++)
                {
                    var l0 = Vector128.Load(ql + 16 * i);
                    var l1 = Vector128.Load(ql + 32 + 16 * i);
                    var qh = Vector128.Load(qhp + 16 * i);
                    var q1 = ((l0 & m4) | (AdvSimd.ShiftLeftLogical(qh, 4) & m3)).AsSByte() - offset;
                    var q2 = ((l1 & m4) | (AdvSimd.ShiftLeftLogical(qh, 2) & m3)).AsSByte() - offset;
                    var q3 = (AdvSimd.ShiftRightLogical(l0, 4) | (qh & m3)).AsSByte() - offset;
                    var q4 = (AdvSimd.ShiftRightLogical(l1, 4) | (AdvSimd.ShiftRightLogical(qh, 2) & m3)).AsSByte() - offset;
                    sumi += Sum16<TDot>(q1, xh + 16 * i) * s[i]
                          + Sum16<TDot>(q2, xh + 32 + 16 * i) * s[i + 2]
                          + Sum16<TDot>(q3, xh + 64 + 16 * i) * s[i + 4]
                          + Sum16<TDot>(q4, xh + 96 + 16 * i) * s[i + 6];
                }
            }
            sum += (float)blk->D * a->D[b] * sumi;
        }
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Sum16<TDot>(Vector128<sbyte> q, sbyte* x) where TDot : IS8Dot =>
        AdvSimd.Arm64.AddAcross(TDot.Dot(Vector128<int>.Zero, q, Vector128.Load(x))).ToScalar();
}
