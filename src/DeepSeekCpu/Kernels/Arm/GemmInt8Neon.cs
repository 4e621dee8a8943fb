using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.Arm;

/// <summary>
/// Arm64 DotProd micro-kernel of <see cref="GemmInt8{TMicro}"/> (4-bit weights, prompt processing on ARMv8.2+ with
/// sdot: Apple M1 and later, Graviton 2 and later): 4-token panels (one 128-bit register of int32 lanes), two per call;
/// per 4 k, a broadcast of 4 weight bytes per row and sdot against each panel (4 exact products into each int32 lane).
/// Checked against the float reference under qemu (tests/DeepSeekCpu.Kernels.Tests on neon-dp); its speed has not been
/// measured on Arm hardware.
/// </summary>
internal readonly unsafe struct GemmInt8Neon : IInt8Micro
{
    public static int Panel => 4;
    public static int TokenStep => 8;
    public static bool Supports(DType t) => t is DType.Q4_0 or DType.Q4_1 or DType.Q4_K;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Micro4(DType t, in Int8Rows w, int nBlocks, in Int8Acts x, float* c, int ldc, bool first)
    {
        const int K = Int8Tiles.KBlock, S = Int8Tiles.BlocksPerSlice;
        byte* wq = w.Q;
        float* wd = w.D, wm = w.M, dx = x.D, sx = x.S;
        sbyte* xq = x.Q;
        int nb = x.Blocks;
        sbyte* xa = xq, xb = xq + (long)nb * 128;              // the two panels
        float* dxa = dx, dxb = dx + (long)nb * 4, sxa = sx, sxb = sx + (long)nb * 4;
        Vector128<float> f0a, f0b, f1a, f1b, f2a, f2b, f3a, f3b;
        if (first) f0a = f0b = f1a = f1b = f2a = f2b = f3a = f3b = Vector128<float>.Zero;
        else
        {
            f0a = Vector128.Load(c); f0b = Vector128.Load(c + 4);
            f1a = Vector128.Load(c + ldc); f1b = Vector128.Load(c + ldc + 4);
            f2a = Vector128.Load(c + 2 * ldc); f2b = Vector128.Load(c + 2 * ldc + 4);
            f3a = Vector128.Load(c + 3 * ldc); f3b = Vector128.Load(c + 3 * ldc + 4);
        }
        for (int b = 0; b < nBlocks; b++)
        {
            Vector128<int> a0a = default, a0b = default, a1a = default, a1b = default, a2a = default, a2b = default, a3a = default, a3b = default;
            byte* w0 = wq + 32 * b;
            sbyte* pa = xa + 128 * b, pb = xb + 128 * b;
            for (int g = 0; g < 8; g++)
            {
                var x0 = Vector128.Load(pa + 16 * g);
                var x1 = Vector128.Load(pb + 16 * g);
                var v = Vector128.Create(*(uint*)(w0 + 4 * g)).AsSByte();
                a0a = Dp.DotProduct(a0a, v, x0); a0b = Dp.DotProduct(a0b, v, x1);
                v = Vector128.Create(*(uint*)(w0 + K + 4 * g)).AsSByte();
                a1a = Dp.DotProduct(a1a, v, x0); a1b = Dp.DotProduct(a1b, v, x1);
                v = Vector128.Create(*(uint*)(w0 + 2 * K + 4 * g)).AsSByte();
                a2a = Dp.DotProduct(a2a, v, x0); a2b = Dp.DotProduct(a2b, v, x1);
                v = Vector128.Create(*(uint*)(w0 + 3 * K + 4 * g)).AsSByte();
                a3a = Dp.DotProduct(a3a, v, x0); a3b = Dp.DotProduct(a3b, v, x1);
            }
            var da = Vector128.Load(dxa + 4 * b);
            var db = Vector128.Load(dxb + 4 * b);
            var sa = Vector128.Load(sxa + 4 * b);
            var sb = Vector128.Load(sxb + 4 * b);
            Scale(ref f0a, ref f0b, a0a, a0b, wd[b], wm[b], da, db, sa, sb);
            Scale(ref f1a, ref f1b, a1a, a1b, wd[S + b], wm[S + b], da, db, sa, sb);
            Scale(ref f2a, ref f2b, a2a, a2b, wd[2 * S + b], wm[2 * S + b], da, db, sa, sb);
            Scale(ref f3a, ref f3b, a3a, a3b, wd[3 * S + b], wm[3 * S + b], da, db, sa, sb);
        }
        f0a.Store(c); f0b.Store(c + 4);
        f1a.Store(c + ldc); f1b.Store(c + ldc + 4);
        f2a.Store(c + 2 * ldc); f2b.Store(c + 2 * ldc + 4);
        f3a.Store(c + 3 * ldc); f3b.Store(c + 3 * ldc + 4);
    }

    /// <summary>f += d_w·d_x·Σq·qx + m_w·(d_x·Σqx) for one row and two token panels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scale(ref Vector128<float> fa, ref Vector128<float> fb, Vector128<int> aa, Vector128<int> ab,
        float dw, float mw, Vector128<float> da, Vector128<float> db, Vector128<float> sa, Vector128<float> sb)
    {
        var d = Vector128.Create(dw);
        var m = Vector128.Create(mw);
        fa = AdvSimd.FusedMultiplyAdd(AdvSimd.FusedMultiplyAdd(fa, sa, m), AdvSimd.ConvertToSingle(aa), da * d);
        fb = AdvSimd.FusedMultiplyAdd(AdvSimd.FusedMultiplyAdd(fb, sb, m), AdvSimd.ConvertToSingle(ab), db * d);
    }
}
