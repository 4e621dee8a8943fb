using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.Arm;

/// <summary>
/// Arm64 DotProd micro-kernel of <see cref="GemmInt8{TMicro}"/> (4-bit weights, Q5_K and Q6_K; prompt processing on ARMv8.2+ with
/// sdot: Apple M1 and later, Graviton 2 and later): 4-token panels (one 128-bit register of int32 lanes), two per call;
/// per 4 k, a broadcast of 4 weight bytes per row and sdot against each panel (4 exact products into each int32 lane),
/// in <see cref="Int8Micro4{TOps, TX, TAcc, TF}"/>. Checked against the integer reference under qemu
/// (tests/DeepSeekCpu.Kernels.Tests on neon-dp); its speed has not been measured on Arm hardware.
/// </summary>
internal readonly unsafe struct GemmInt8Neon : IInt8Micro, IInt8Ops<Vector128<sbyte>, Vector128<int>, Vector128<float>>,
    IInt8KOps<Vector128<int>, Vector128<int>, Vector128<float>>
{
    public static int Panel => 4;
    public static int TokenStep => 8;
    public static bool Supports(DType t) => t is DType.Q4_0 or DType.Q4_1 or DType.Q4_K or DType.Q5_K or DType.Q6_K;
    /// <summary>The K-quants against Q8_K activations: not measured on Arm hardware; sdot and the float scaling share
    /// NEON's pipes, as on AVX2. sdot sums in int32, so Q5_K's and Q6_K's wider q need no int16 headroom here.</summary>
    public static bool UsesQ8K(DType t) => Int8Tiles.UsesQ8K(t) || t is DType.Q5_K or DType.Q6_K;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Micro4<TL>(DType t, in Int8Rows w, int nBlocks, in Int8Acts x, float* c, int ldc, bool first) where TL : struct, ITileLayout
    {
        if (UsesQ8K(t)) Int8MicroK<GemmInt8Neon, Vector128<sbyte>, Vector128<int>, Vector128<int>, Vector128<float>>.Run<TL>(t, w, x, c, ldc, first);
        else Int8Micro4<GemmInt8Neon, Vector128<sbyte>, Vector128<int>, Vector128<float>>.Run<TL>(t, w, nBlocks, x, c, ldc, first);
    }

    public static Vector128<sbyte> Broadcast(byte* w) => Vector128.Create(*(uint*)w).AsSByte();
    public static Vector128<int> Dot(Vector128<int> acc, Vector128<sbyte> w, Vector128<sbyte> x) => Dp.DotProduct(acc, w, x);

    /// <summary>fmla computes a + b·c: (f + sx·m) + float(acc)·(dx·d), the x86 order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Scale(Vector128<float> f, Vector128<int> acc, float dw, float mw, Vector128<float> dx, Vector128<float> sx) =>
        AdvSimd.FusedMultiplyAdd(AdvSimd.FusedMultiplyAdd(f, sx, Vector128.Create(mw)), AdvSimd.ConvertToSingle(acc), dx * Vector128.Create(dw));

    /// <summary>sdot sums a token's 4 k into one int32: the offset's two int16 halves added (sign-extended).</summary>
    public static Vector128<int> Offset(int* o)
    {
        var v = Vector128.Load(o);
        return (v << 16 >> 16) + (v >> 16);
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Scale(Vector128<float> f, Vector128<int> acc, float dw, Vector128<float> dx) =>
        AdvSimd.FusedMultiplyAdd(f, AdvSimd.ConvertToSingle(acc), dx * Vector128.Create(dw));

    /// <summary>sdot's sums are int32 already: mla by the scale (the low int16 half of sc·0x10001).</summary>
    public static Vector128<int> AddScaled(Vector128<int> isum, Vector128<int> acc, int* sc) =>
        AdvSimd.MultiplyAdd(isum, acc, Vector128.Create((int)*(short*)sc));

    /// <summary>smull / smull2 of the int16 pairs, then addp: per token Σq_x(2p)·m_2p + Σq_x(2p + 1)·m_2p+1.</summary>
    public static Vector128<int> AddMins(Vector128<int> imin, int* bs, int mins)
    {
        var b = Vector128.Load(bs).AsInt16();
        var m = Vector128.Create(mins).AsInt16();
        var lo = AdvSimd.MultiplyWideningLower(b.GetLower(), m.GetLower());   // tokens 0, 1: two products each
        var hi = AdvSimd.MultiplyWideningUpper(b, m);                          // tokens 2, 3
        return imin + AdvSimd.Arm64.AddPairwise(lo, hi);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ScaleK(Vector128<float> f, Vector128<int> isum, Vector128<int> imin, float d, float negDmin, Vector128<float> dx) =>
        AdvSimd.FusedMultiplyAdd(AdvSimd.FusedMultiplyAdd(f, AdvSimd.ConvertToSingle(isum), dx * Vector128.Create(d)),
            AdvSimd.ConvertToSingle(imin), dx * Vector128.Create(negDmin));
}
