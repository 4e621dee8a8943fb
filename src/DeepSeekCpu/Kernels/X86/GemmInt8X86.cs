using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.X86;

/// <summary>
/// AVX-512BW micro-kernel of <see cref="GemmInt8{TMicro}"/> (prompt processing of Q4_0, Q4_1, Q4_K, Q8_0, Q6_K and Q5_K).
/// Measured on this Zen 5: 512-bit vpmaddubsw + vpmaddwd + vpaddd retire ~740 G int8 ops/s per core, against
/// 225 GFLOP/s for float FMA and 430 G ops/s for 256-bit AVX-VNNI (no 512-bit VNNI in .NET 10).
/// 16-token panels (one 512-bit register of int32 lanes), two per call: per 4 k, one broadcast of 4 weight bytes per
/// row and vpmaddubsw against the token vectors, summed in int16 across the whole block (8 × 2·15·127 = 30480 fits),
/// then one vpmaddwd to int32, converted and scaled per block: C += d_w·d_x·Σq·qx + m_w·(d_x·Σqx).
/// </summary>
internal readonly unsafe struct GemmInt8Avx512 : IInt8Micro, IInt8Ops<Vector512<sbyte>, Vector512<short>, Vector512<float>>,
    IInt8KOps<Vector512<short>, Vector512<int>, Vector512<float>>
{
    private const int KBlock = Int8Tiles.KBlock, BlocksPerSlice = Int8Tiles.BlocksPerSlice;

    /// <summary>Tokens per packed panel: one 512-bit register of int32 lanes.</summary>
    public static int Panel => 16;
    /// <summary>Tokens per micro-kernel call (two panels).</summary>
    public static int TokenStep => 32;

    public static bool Supports(DType t) => t is DType.Q4_0 or DType.Q4_1 or DType.Q4_K or DType.Q8_0 or DType.Q6_K or DType.Q5_K;

    /// <summary>
    /// Q4_K against Q8_K activations (<see cref="Int8MicroK{TOps, TX, TAcc, TI, TF}"/>: integer sub-block scales, one float
    /// step per 256). On an Intel Xeon (README, prompt kernels) it measured level with Q8_0 activations (its float scaling ran on
    /// port 5 beside vpmaddubsw on port 0); on Zen 4, where 512-bit integer multiplies, converts and FMAs share the same
    /// four double-pumped pipes, it is 5-10% faster (`DeepSeekCpu.Bench quick --no-gemv --n 512 --formats Q4_K --threads 1
    /// --cpu-time --x16`, twelfth session: x16 shapes 190-219 → 212-240 GFLOP/s, layer mix 186-192 → 200-207), and the
    /// prompt then quantizes its activations as decoding does.
    /// </summary>
    public static bool UsesQ8K(DType t) => Int8Tiles.UsesQ8K(t) || t is DType.Q6_K or DType.Q5_K;

    /// <summary>
    /// Q4_K, Q5_K and Q6_K multiply against Q8_K activations (<see cref="Int8MicroK{TOps, TX, TAcc, TI, TF}"/>), Q4_0 and
    /// Q4_1 through <see cref="Int8Micro4{TOps, TX, TAcc, TF}"/>. Q8_0 (where AVX-VNNI is missing: with it, GemmQ8 runs)
    /// does not fit vpmaddubsw's unsigned operand with int16 headroom, so it is split into two nibble planes:
    /// q + 128 = 16·h + l with h, l in 0..15, and Σ q·x = 16·Σ h·x + Σ l·x − 128·Σ x (the −128 goes into m); two planes
    /// need twice the int16 accumulators, so they run two rows at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Micro4<TL>(DType t, in Int8Rows w, int nBlocks, in Int8Acts x, float* c, int ldc, bool first) where TL : struct, ITileLayout
    {
        if (UsesQ8K(t))
        {
            Int8MicroK<GemmInt8Avx512, Vector512<sbyte>, Vector512<short>, Vector512<int>, Vector512<float>>.Run<TL>(t, w, x, c, ldc, first);
            return;
        }
        if (t != DType.Q8_0)
        {
            Int8Micro4<GemmInt8Avx512, Vector512<sbyte>, Vector512<short>, Vector512<float>>.Run<TL>(t, w, nBlocks, x, c, ldc, first);
            return;
        }
        sbyte* xa = x.Q, xb = x.Q + (long)x.Blocks * 32 * 16;   // the two panels
        float* dxa = x.D, dxb = x.D + (long)x.Blocks * 16;
        int ss = w.ScaleStride;
        for (int h = 0; h < 4; h += 2)
            Micro2x32Split(w.Q + h * KBlock, w.High + h * KBlock, w.D + h * ss, w.M + h * ss, nBlocks,
                xa, xb, dxa, dxb, x.S, x.S + (long)x.Blocks * 16, c + (long)h * ldc, ldc, first);
    }

    // ---------- the 4-bit formats: the operators of Int8Micro4 at 512 bits ----------

    public static Vector512<sbyte> Broadcast(byte* w) => Vector512.Create(*(uint*)w).AsSByte();
    public static Vector512<short> Dot(Vector512<short> acc, Vector512<sbyte> w, Vector512<sbyte> x) => acc + Avx512BW.MultiplyAddAdjacent(w.AsByte(), x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Scale(Vector512<float> f, Vector512<short> acc, float dw, float mw, Vector512<float> dx, Vector512<float> sx) =>
        Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512BW.MultiplyAddAdjacent(acc, Vector512<short>.One)), dx * Vector512.Create(dw), Avx512F.FusedMultiplyAdd(sx, Vector512.Create(mw), f));
    public static Vector512<short> Offset(int* o) => Vector512.Load((short*)o);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Scale(Vector512<float> f, Vector512<short> acc, float dw, Vector512<float> dx) =>
        Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512BW.MultiplyAddAdjacent(acc, Vector512<short>.One)), dx * Vector512.Create(dw), f);

    public static Vector512<int> AddScaled(Vector512<int> isum, Vector512<short> acc, int* sc) =>
        isum + Avx512BW.MultiplyAddAdjacent(acc, Vector512.Create(*sc).AsInt16());
    public static Vector512<int> AddMins(Vector512<int> imin, int* bs, int mins) =>
        imin + Avx512BW.MultiplyAddAdjacent(Vector512.Load(bs).AsInt16(), Vector512.Create(mins).AsInt16());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> ScaleK(Vector512<float> f, Vector512<int> isum, Vector512<int> imin, float d, float negDmin, Vector512<float> dx) =>
        Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(imin), dx * Vector512.Create(negDmin),
            Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum), dx * Vector512.Create(d), f));

    /// <summary>
    /// Two rows × 32 tokens of Q8_0 split into nibble planes (see <see cref="Micro4"/>): each plane accumulates in
    /// int16 like the 4-bit kernel (8 × 2·15·127 per lane); the high plane's sums are weighted by 16 in vpmaddwd, and
    /// both scaled once per block (wd/wm one value per block, row stride BlocksPerSlice; sxa/sxb the activations' d·Σq).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro2x32Split(byte* wl, byte* wh, float* wd, float* wm, int nBlocks, sbyte* xa, sbyte* xb,
        float* dxa, float* dxb, float* sxa, float* sxb, float* c, int ldc, bool first)
    {
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
            Vector512<short> l00 = default, l01 = default, l10 = default, l11 = default;
            Vector512<short> h00 = default, h01 = default, h10 = default, h11 = default;
            byte* pl = wl + 32 * b, ph = wh + 32 * b;
            sbyte* pa = xa + 512 * b, pb = xb + 512 * b;
            for (int g = 0; g < 8; g++)
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
            var sa = Vector512.Load(sxa + 16 * b);
            var sb = Vector512.Load(sxb + 16 * b);
            ScaleSplit(ref f00, ref f01, l00, l01, h00, h01, wd[b], wm[b], da, db, sa, sb, ones, sixteens);
            ScaleSplit(ref f10, ref f11, l10, l11, h10, h11, wd[BlocksPerSlice + b], wm[BlocksPerSlice + b], da, db, sa, sb, ones, sixteens);
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

/// <summary>
/// AVX2 micro-kernel of <see cref="GemmInt8{TMicro}"/> (4-bit weights, Q5_K and Q6_K; prompt processing on x86 without AVX-512):
/// 8-token panels (one 256-bit register of int32 lanes), one per call (two would need more than AVX2's 16 registers);
/// per 4 k, a broadcast of 4 weight bytes per row and vpmaddubsw against the panel, summed in int16 across the block,
/// one vpmaddwd to int32 per block (<see cref="Int8Micro4{TOps, TX, TAcc, TF}"/>); the K-quants against Q8_K activations
/// (<see cref="Int8MicroK{TOps, TX, TAcc, TI, TF}"/>). Q8_0 takes GemmQ8 where AVX-VNNI exists, else the float GEMM:
/// its split into nibble planes would double the int16 accumulators.
/// </summary>
internal readonly unsafe struct GemmInt8Avx2 : IInt8Micro, IInt8Ops<Vector256<sbyte>, Vector256<short>, Vector256<float>>,
    IInt8KOps<Vector256<short>, Vector256<int>, Vector256<float>>
{
    public static int Panel => 8;
    public static int TokenStep => 8;
    public static bool Supports(DType t) => t is DType.Q4_0 or DType.Q4_1 or DType.Q4_K or DType.Q5_K or DType.Q6_K;
    public static bool UsesQ8K(DType t) => Int8Tiles.UsesQ8K(t) || t is DType.Q5_K or DType.Q6_K;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Micro4<TL>(DType t, in Int8Rows w, int nBlocks, in Int8Acts x, float* c, int ldc, bool first) where TL : struct, ITileLayout
    {
        if (UsesQ8K(t)) Int8MicroK<GemmInt8Avx2, Vector256<sbyte>, Vector256<short>, Vector256<int>, Vector256<float>>.Run<TL>(t, w, x, c, ldc, first);
        else Int8Micro4<GemmInt8Avx2, Vector256<sbyte>, Vector256<short>, Vector256<float>>.Run<TL>(t, w, nBlocks, x, c, ldc, first);
    }

    public static Vector256<sbyte> Broadcast(byte* w) => Vector256.Create(*(uint*)w).AsSByte();
    public static Vector256<short> Dot(Vector256<short> acc, Vector256<sbyte> w, Vector256<sbyte> x) => acc + Avx2.MultiplyAddAdjacent(w.AsByte(), x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Scale(Vector256<float> f, Vector256<short> acc, float dw, float mw, Vector256<float> dx, Vector256<float> sx) =>
        Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(acc, Vector256<short>.One)), dx * Vector256.Create(dw), Fma.MultiplyAdd(sx, Vector256.Create(mw), f));
    public static Vector256<short> Offset(int* o) => Vector256.Load((short*)o);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Scale(Vector256<float> f, Vector256<short> acc, float dw, Vector256<float> dx) =>
        Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(acc, Vector256<short>.One)), dx * Vector256.Create(dw), f);

    public static Vector256<int> AddScaled(Vector256<int> isum, Vector256<short> acc, int* sc) =>
        isum + Avx2.MultiplyAddAdjacent(acc, Vector256.Create(*sc).AsInt16());
    public static Vector256<int> AddMins(Vector256<int> imin, int* bs, int mins) =>
        imin + Avx2.MultiplyAddAdjacent(Vector256.Load(bs).AsInt16(), Vector256.Create(mins).AsInt16());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ScaleK(Vector256<float> f, Vector256<int> isum, Vector256<int> imin, float d, float negDmin, Vector256<float> dx) =>
        Fma.MultiplyAdd(Avx.ConvertToVector256Single(imin), dx * Vector256.Create(negDmin),
            Fma.MultiplyAdd(Avx.ConvertToVector256Single(isum), dx * Vector256.Create(d), f));
}
