using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.X86;

/// <summary>
/// AVX2 micro-kernel of <see cref="GemmInt8{TMicro}"/> (4-bit weights, prompt processing on x86 without AVX-512):
/// 8-token panels (one 256-bit register of int32 lanes), one per call (two would need more than AVX2's 16 registers);
/// per 4 k, a broadcast of 4 weight bytes per row and vpmaddubsw against the panel, summed in int16 across the block,
/// one vpmaddwd to int32 per block (<see cref="Int8Micro4{TOps, TX, TAcc, TF}"/>). 8-bit formats (Q8_0, Q6_K) keep the
/// float GEMM here: their split into nibble planes doubles the int16 accumulators.
/// </summary>
internal readonly unsafe struct GemmInt8Avx2 : IInt8Micro, IInt8Ops<Vector256<sbyte>, Vector256<short>, Vector256<float>>
{
    public static int Panel => 8;
    public static int TokenStep => 8;
    public static bool Supports(DType t) => t is DType.Q4_0 or DType.Q4_1 or DType.Q4_K;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Micro4(DType t, in Int8Rows w, int nBlocks, in Int8Acts x, float* c, int ldc, bool first) =>
        Int8Micro4<GemmInt8Avx2, Vector256<sbyte>, Vector256<short>, Vector256<float>>.Run(w, nBlocks, x, c, ldc, first);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Load(sbyte* x) => Vector256.Load(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Broadcast(byte* w) => Vector256.Create(*(uint*)w).AsSByte();
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> Dot(Vector256<short> acc, Vector256<sbyte> w, Vector256<sbyte> x) => acc + Avx2.MultiplyAddAdjacent(w.AsByte(), x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadF(float* p) => Vector256.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreF(Vector256<float> v, float* p) => v.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Scale(Vector256<float> f, Vector256<short> acc, float dw, float mw, Vector256<float> dx, Vector256<float> sx) =>
        Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(acc, Vector256<short>.One)), dx * Vector256.Create(dw), Fma.MultiplyAdd(sx, Vector256.Create(mw), f));
}
