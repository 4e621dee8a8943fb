using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.X86;

/// <summary>
/// AVX2 micro-kernel of <see cref="GemmInt8{TMicro}"/> (4-bit weights, prompt processing on x86 without AVX-512):
/// 8-token panels (one 256-bit register of int32 lanes); per 4 k, a broadcast of 4 weight bytes per row and vpmaddubsw
/// against the panel, summed in int16 across the block (8 × 2·15·127 = 30480 fits), one vpmaddwd to int32 per block.
/// 8-bit formats (Q8_0, Q6_K) keep the float GEMM here: their split into nibble planes doubles the int16 accumulators,
/// more than AVX2's 16 registers hold.
/// </summary>
internal readonly unsafe struct GemmInt8Avx2 : IInt8Micro
{
    public static int Panel => 8;
    public static int TokenStep => 8;
    public static bool Supports(DType t) => t is DType.Q4_0 or DType.Q4_1 or DType.Q4_K;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Micro4(DType t, in Int8Rows w, int nBlocks, in Int8Acts x, float* c, int ldc, bool first)
    {
        const int K = Int8Tiles.KBlock, S = Int8Tiles.BlocksPerSlice;
        byte* wq = w.Q;
        float* wd = w.D, wm = w.M, dx = x.D, sx = x.S;
        sbyte* xq = x.Q;
        Vector256<float> f0, f1, f2, f3;
        if (first) f0 = f1 = f2 = f3 = Vector256<float>.Zero;
        else
        {
            f0 = Vector256.Load(c); f1 = Vector256.Load(c + ldc); f2 = Vector256.Load(c + 2 * ldc); f3 = Vector256.Load(c + 3 * ldc);
        }
        var ones = Vector256<short>.One;
        for (int b = 0; b < nBlocks; b++)
        {
            Vector256<short> a0 = default, a1 = default, a2 = default, a3 = default;
            byte* w0 = wq + 32 * b;
            sbyte* p = xq + 256 * b;
            for (int g = 0; g < 8; g++)
            {
                var v = Vector256.Load(p + 32 * g);
                a0 += Avx2.MultiplyAddAdjacent(Vector256.Create(*(uint*)(w0 + 4 * g)).AsByte(), v);
                a1 += Avx2.MultiplyAddAdjacent(Vector256.Create(*(uint*)(w0 + K + 4 * g)).AsByte(), v);
                a2 += Avx2.MultiplyAddAdjacent(Vector256.Create(*(uint*)(w0 + 2 * K + 4 * g)).AsByte(), v);
                a3 += Avx2.MultiplyAddAdjacent(Vector256.Create(*(uint*)(w0 + 3 * K + 4 * g)).AsByte(), v);
            }
            var d = Vector256.Load(dx + 8 * b);
            var s = Vector256.Load(sx + 8 * b);
            Scale(ref f0, a0, wd[b], wm[b], d, s, ones);
            Scale(ref f1, a1, wd[S + b], wm[S + b], d, s, ones);
            Scale(ref f2, a2, wd[2 * S + b], wm[2 * S + b], d, s, ones);
            Scale(ref f3, a3, wd[3 * S + b], wm[3 * S + b], d, s, ones);
        }
        f0.Store(c); f1.Store(c + ldc); f2.Store(c + 2 * ldc); f3.Store(c + 3 * ldc);
    }

    /// <summary>f += d_w·d_x·Σq·qx + m_w·(d_x·Σqx) for one row and one token panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scale(ref Vector256<float> f, Vector256<short> acc, float dw, float mw, Vector256<float> dx, Vector256<float> sx, Vector256<short> ones) =>
        f = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(acc, ones)), dx * Vector256.Create(dw), Fma.MultiplyAdd(sx, Vector256.Create(mw), f));
}
