using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.X86;

/// <summary>
/// AVX-512BW micro-kernel of <see cref="GemmInt8{TMicro}"/> (prompt processing of Q4_0, Q4_1, Q4_K, Q8_0 and Q6_K).
/// Measured on this Zen 5: 512-bit vpmaddubsw + vpmaddwd + vpaddd retire ~740 G int8 ops/s per core, against
/// 225 GFLOP/s for float FMA and 430 G ops/s for 256-bit AVX-VNNI (no 512-bit VNNI in .NET 10).
/// 16-token panels (one 512-bit register of int32 lanes), two per call: per 4 k, one broadcast of 4 weight bytes per
/// row and vpmaddubsw against the token vectors, summed in int16 across the whole block (8 × 2·15·127 = 30480 fits),
/// then one vpmaddwd to int32, converted and scaled per block: C += d_w·d_x·Σq·qx + m_w·(d_x·Σqx).
/// </summary>
internal readonly unsafe struct GemmInt8Avx512 : IInt8Micro
{
    private const int KBlock = Int8Tiles.KBlock, BlocksPerSlice = Int8Tiles.BlocksPerSlice;

    /// <summary>Tokens per packed panel: one 512-bit register of int32 lanes.</summary>
    public static int Panel => 16;
    /// <summary>Tokens per micro-kernel call (two panels).</summary>
    public static int TokenStep => 32;

    public static bool Supports(DType t) => t is DType.Q4_0 or DType.Q4_1 or DType.Q4_K or DType.Q8_0 or DType.Q6_K;

    /// <summary>
    /// 8-bit weights do not fit vpmaddubsw's unsigned operand with int16 headroom, so they are split into two nibble
    /// planes: q + 128 = 16·h + l with h, l in 0..15, and Σ q·x = 16·Σ h·x + Σ l·x − 128·Σ x (the −128 goes into m);
    /// two planes need twice the int16 accumulators, so they run two rows at a time. Q6_K carries a scale per 16
    /// elements: its d and m are per half block, applied after 4 groups of 4 k.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Micro4(DType t, in Int8Rows w, int nBlocks, in Int8Acts x, float* c, int ldc, bool first)
    {
        sbyte* xa = x.Q, xb = x.Q + (long)x.Blocks * 32 * 16;   // the two panels
        float* dxa = x.D, dxb = x.D + (long)x.Blocks * 16;
        int ss = w.ScaleStride;
        if (t == DType.Q6_K)
        {
            float* sxa = x.SHalf, sxb = x.SHalf + (long)x.Blocks * 32;
            for (int h = 0; h < 4; h += 2)
                Micro2x32Split<PerHalfBlock>(w.Q + h * KBlock, w.High + h * KBlock, w.D + h * ss, w.M + h * ss, nBlocks,
                    xa, xb, dxa, dxb, sxa, sxb, c + (long)h * ldc, ldc, first);
        }
        else
        {
            float* sxa = x.S, sxb = x.S + (long)x.Blocks * 16;
            if (t == DType.Q8_0)
            {
                for (int h = 0; h < 4; h += 2)
                    Micro2x32Split<PerBlock>(w.Q + h * KBlock, w.High + h * KBlock, w.D + h * ss, w.M + h * ss, nBlocks,
                        xa, xb, dxa, dxb, sxa, sxb, c + (long)h * ldc, ldc, first);
            }
            else Micro4x32(w.Q, w.D, w.M, nBlocks, xa, xb, dxa, dxb, sxa, sxb, c, ldc, first);
        }
    }

    /// <summary>
    /// C[4 rows, 32 tokens] (+)= Σ over nBlocks blocks. wq: 4 rows of unpacked bytes (stride KBlock); wd/wm: their
    /// per-block d and m (stride BlocksPerSlice); xa/xb: the two token panels' packed quants at the first block
    /// (512 bytes per block); dxa.../sxa...: their per-block scales and d·Σq (16 floats per block).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro4x32(byte* wq, float* wd, float* wm, int nBlocks, sbyte* xa, sbyte* xb,
        float* dxa, float* dxb, float* sxa, float* sxb, float* c, int ldc, bool first)
    {
        Vector512<float> f00, f01, f10, f11, f20, f21, f30, f31;
        if (first)
        {
            f00 = f01 = f10 = f11 = f20 = f21 = f30 = f31 = Vector512<float>.Zero;
        }
        else
        {
            f00 = Vector512.Load(c); f01 = Vector512.Load(c + 16);
            f10 = Vector512.Load(c + ldc); f11 = Vector512.Load(c + ldc + 16);
            f20 = Vector512.Load(c + 2 * ldc); f21 = Vector512.Load(c + 2 * ldc + 16);
            f30 = Vector512.Load(c + 3 * ldc); f31 = Vector512.Load(c + 3 * ldc + 16);
        }
        var ones = Vector512<short>.One;
        for (int b = 0; b < nBlocks; b++)
        {
            Vector512<short> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
            byte* w0 = wq + 32 * b;
            sbyte* pa = xa + 512 * b, pb = xb + 512 * b;
            for (int g = 0; g < 8; g++)
            {
                var x0 = Vector512.Load(pa + 64 * g);
                var x1 = Vector512.Load(pb + 64 * g);
                var v = Vector512.Create(*(uint*)(w0 + 4 * g)).AsByte();
                a00 += Avx512BW.MultiplyAddAdjacent(v, x0); a01 += Avx512BW.MultiplyAddAdjacent(v, x1);
                v = Vector512.Create(*(uint*)(w0 + KBlock + 4 * g)).AsByte();
                a10 += Avx512BW.MultiplyAddAdjacent(v, x0); a11 += Avx512BW.MultiplyAddAdjacent(v, x1);
                v = Vector512.Create(*(uint*)(w0 + 2 * KBlock + 4 * g)).AsByte();
                a20 += Avx512BW.MultiplyAddAdjacent(v, x0); a21 += Avx512BW.MultiplyAddAdjacent(v, x1);
                v = Vector512.Create(*(uint*)(w0 + 3 * KBlock + 4 * g)).AsByte();
                a30 += Avx512BW.MultiplyAddAdjacent(v, x0); a31 += Avx512BW.MultiplyAddAdjacent(v, x1);
            }
            var da = Vector512.Load(dxa + 16 * b);
            var db = Vector512.Load(dxb + 16 * b);
            var sa = Vector512.Load(sxa + 16 * b);
            var sb = Vector512.Load(sxb + 16 * b);
            Scale(ref f00, ref f01, a00, a01, wd[b], wm[b], da, db, sa, sb, ones);
            Scale(ref f10, ref f11, a10, a11, wd[BlocksPerSlice + b], wm[BlocksPerSlice + b], da, db, sa, sb, ones);
            Scale(ref f20, ref f21, a20, a21, wd[2 * BlocksPerSlice + b], wm[2 * BlocksPerSlice + b], da, db, sa, sb, ones);
            Scale(ref f30, ref f31, a30, a31, wd[3 * BlocksPerSlice + b], wm[3 * BlocksPerSlice + b], da, db, sa, sb, ones);
        }
        f00.Store(c); f01.Store(c + 16);
        f10.Store(c + ldc); f11.Store(c + ldc + 16);
        f20.Store(c + 2 * ldc); f21.Store(c + 2 * ldc + 16);
        f30.Store(c + 3 * ldc); f31.Store(c + 3 * ldc + 16);
    }

    /// <summary>f += d_w·d_x·Σq·qx + m_w·(d_x·Σqx) for one row and two token panels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scale(ref Vector512<float> fa, ref Vector512<float> fb, Vector512<short> aa, Vector512<short> ab,
        float dw, float mw, Vector512<float> da, Vector512<float> db, Vector512<float> sa, Vector512<float> sb, Vector512<short> ones)
    {
        var d = Vector512.Create(dw);
        var m = Vector512.Create(mw);
        fa = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512BW.MultiplyAddAdjacent(aa, ones)), da * d, Avx512F.FusedMultiplyAdd(sa, m, fa));
        fb = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512BW.MultiplyAddAdjacent(ab, ones)), db * d, Avx512F.FusedMultiplyAdd(sb, m, fb));
    }

    /// <summary>How many scale groups one 32-element block has: its d and m apply after 32 / Groups elements.</summary>
    private interface IScaleGroups { static abstract int Groups { get; } }
    /// <summary>A scale per 32 elements (Q8_0).</summary>
    private readonly struct PerBlock : IScaleGroups { public static int Groups => 1; }
    /// <summary>A scale per 16 elements (Q6_K).</summary>
    private readonly struct PerHalfBlock : IScaleGroups { public static int Groups => 2; }

    /// <summary>
    /// Two rows × 32 tokens of an 8-bit format split into nibble planes (see <see cref="Micro4"/>): each plane
    /// accumulates in int16 like the 4-bit kernel; the high plane's sums are weighted by 16 in vpmaddwd. The int16 sums
    /// are scaled after each of <typeparamref name="TGroups"/> groups per block; wd/wm hold one value per group (row
    /// stride Groups·BlocksPerSlice) and sxa/sxb the activations' d·Σq per group (16·Groups floats per block).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro2x32Split<TGroups>(byte* wl, byte* wh, float* wd, float* wm, int nBlocks, sbyte* xa, sbyte* xb,
        float* dxa, float* dxb, float* sxa, float* sxb, float* c, int ldc, bool first) where TGroups : struct, IScaleGroups
    {
        int groups = TGroups.Groups, perGroup = 8 / groups, rowStride = groups * BlocksPerSlice;
        Vector512<float> f00, f01, f10, f11;
        if (first)
        {
            f00 = f01 = f10 = f11 = Vector512<float>.Zero;
        }
        else
        {
            f00 = Vector512.Load(c); f01 = Vector512.Load(c + 16);
            f10 = Vector512.Load(c + ldc); f11 = Vector512.Load(c + ldc + 16);
        }
        var ones = Vector512<short>.One;
        var sixteens = Vector512.Create((short)16);
        for (int b = 0; b < nBlocks; b++)
        {
            for (int half = 0; half < groups; half++)
            {
                Vector512<short> l00 = default, l01 = default, l10 = default, l11 = default;
                Vector512<short> h00 = default, h01 = default, h10 = default, h11 = default;
                byte* pl = wl + 32 * b + 4 * perGroup * half, ph = wh + 32 * b + 4 * perGroup * half;
                sbyte* pa = xa + 512 * b + 64 * perGroup * half, pb = xb + 512 * b + 64 * perGroup * half;
                for (int g = 0; g < perGroup; g++)
                {
                    var x0 = Vector512.Load(pa + 64 * g);
                    var x1 = Vector512.Load(pb + 64 * g);
                    var v = Vector512.Create(*(uint*)(pl + 4 * g)).AsByte();
                    l00 += Avx512BW.MultiplyAddAdjacent(v, x0); l01 += Avx512BW.MultiplyAddAdjacent(v, x1);
                    v = Vector512.Create(*(uint*)(ph + 4 * g)).AsByte();
                    h00 += Avx512BW.MultiplyAddAdjacent(v, x0); h01 += Avx512BW.MultiplyAddAdjacent(v, x1);
                    v = Vector512.Create(*(uint*)(pl + KBlock + 4 * g)).AsByte();
                    l10 += Avx512BW.MultiplyAddAdjacent(v, x0); l11 += Avx512BW.MultiplyAddAdjacent(v, x1);
                    v = Vector512.Create(*(uint*)(ph + KBlock + 4 * g)).AsByte();
                    h10 += Avx512BW.MultiplyAddAdjacent(v, x0); h11 += Avx512BW.MultiplyAddAdjacent(v, x1);
                }
                var da = Vector512.Load(dxa + 16 * b);
                var db = Vector512.Load(dxb + 16 * b);
                var sa = Vector512.Load(sxa + groups * 16 * b + 16 * half);
                var sb = Vector512.Load(sxb + groups * 16 * b + 16 * half);
                int si = groups * b + half;
                ScaleSplit(ref f00, ref f01, l00, l01, h00, h01, wd[si], wm[si], da, db, sa, sb, ones, sixteens);
                ScaleSplit(ref f10, ref f11, l10, l11, h10, h11, wd[rowStride + si], wm[rowStride + si], da, db, sa, sb, ones, sixteens);
            }
        }
        f00.Store(c); f01.Store(c + 16);
        f10.Store(c + ldc); f11.Store(c + ldc + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScaleSplit(ref Vector512<float> fa, ref Vector512<float> fb, Vector512<short> la, Vector512<short> lb,
        Vector512<short> ha, Vector512<short> hb, float dw, float mw, Vector512<float> da, Vector512<float> db,
        Vector512<float> sa, Vector512<float> sb, Vector512<short> ones, Vector512<short> sixteens)
    {
        var d = Vector512.Create(dw);
        var m = Vector512.Create(mw);
        var ia = Avx512BW.MultiplyAddAdjacent(la, ones) + Avx512BW.MultiplyAddAdjacent(ha, sixteens);
        var ib = Avx512BW.MultiplyAddAdjacent(lb, ones) + Avx512BW.MultiplyAddAdjacent(hb, sixteens);
        fa = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(ia), da * d, Avx512F.FusedMultiplyAdd(sa, m, fa));
        fb = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(ib), db * d, Avx512F.FusedMultiplyAdd(sb, m, fb));
    }
}
