using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.X86;

/// <summary>
/// Integer matrix-matrix product for 4-bit weights (Q4_0, Q4_1, Q4_K) and Q8_0 on AVX-512BW, the prompt-processing path.
/// Measured on this Zen 5: 512-bit vpmaddubsw + vpmaddwd + vpaddd retire ~740 G int8 ops/s per core, against
/// 225 GFLOP/s for float FMA and 430 G ops/s for 256-bit AVX-VNNI (no 512-bit VNNI in .NET 10).
/// <list type="bullet">
/// <item>Every weight element of these formats is d·q + m per 32-element (sub-)block with q in 0..15; a tile of 64
/// rows × 256 columns is unpacked to bytes q plus per-block d and m once and reused for all tokens.</item>
/// <item>Activations are quantized once per call to int8 with a float scale per 32 (RNE, Q8_0 style) and packed so one
/// 64-byte load holds 4 consecutive k of 16 tokens: Xq[panel][block][k/4][token][k%4].</item>
/// <item>Micro-kernel (4 rows × 32 tokens): per 4 k, one broadcast of 4 weight bytes per row and vpmaddubsw against
/// the token vectors, summed in int16 across the whole block (8 × 2·15·127 = 30480 fits), then one vpmaddwd to int32,
/// converted and scaled per block: C += d_w·d_x·Σq·qx + m_w·(d_x·Σqx).</item>
/// </list>
/// </summary>
internal static unsafe class GemmInt8Avx512
{
    private const int Panel = 16;        // tokens per packed panel: one 512-bit register of int32 lanes
    private const int TokenStep = 32;    // tokens per micro-kernel call (two panels)
    private const int RowStep = 4;       // rows per micro-kernel call
    private const int RowBlock = 64;
    private const int KBlock = 256;      // columns per unpacked slice
    private const int BlocksPerSlice = KBlock / 32;

    public static bool Supports(DType t) => t is DType.Q4_0 or DType.Q4_1 or DType.Q4_K or DType.Q8_0 or DType.Q6_K;

    /// <summary>Q6_K carries a scale per 16 elements: its d and m are per half block, applied after 4 groups of 4 k.</summary>
    private static bool HalfBlockScales(DType t) => t == DType.Q6_K;

    /// <summary>
    /// 8-bit weights do not fit vpmaddubsw's unsigned operand with int16 headroom, so they are split into two nibble
    /// planes: q + 128 = 16·h + l with h, l in 0..15, and Σ q·x = 16·Σ h·x + Σ l·x − 128·Σ x (the −128 goes into m).
    /// </summary>
    private static bool SplitPlanes(DType t) => t is DType.Q8_0 or DType.Q6_K;

    [ThreadStatic] private static byte[]? _acts;
    [ThreadStatic] private static PackJob? _pack;
    [ThreadStatic] private static Job? _job;

    public static void Run(WeightMatrix w, float* x, float* y, int n)
    {
        int cols = w.Cols, nb = cols / 32;
        int nPad = (n + TokenStep - 1) / TokenStep * TokenStep, panels = nPad / Panel;
        long xqBytes = (long)panels * nb * 512, scaleFloats = (long)panels * nb * Panel;
        byte* mem = Scratch.Get(ref _acts, xqBytes + 4 * scaleFloats * sizeof(float));
        var pack = _pack ??= new PackJob();
        pack.X = x; pack.N = n; pack.Cols = cols;
        pack.Xq = (sbyte*)mem; pack.Dx = (float*)(mem + xqBytes); pack.Sx = pack.Dx + scaleFloats; pack.Sx16 = pack.Sx + scaleFloats;
        WorkerPool.Shared.Run(pack, panels, grain: 1);

        var job = _job ??= new Job();
        job.W = w; job.Y = y; job.N = n; job.NPad = nPad;
        job.Xq = pack.Xq; job.Dx = pack.Dx; job.Sx = pack.Sx; job.Sx16 = pack.Sx16;
        WorkerPool.Shared.Run(job, (w.Rows + RowBlock - 1) / RowBlock, grain: 1);
        job.W = null!;
    }

    /// <summary>Quantizes and packs 16 tokens per panel (padding tokens are zero).</summary>
    private sealed class PackJob : IRangeJob
    {
        public float* X, Dx, Sx, Sx16;   // Sx16[panel][block][half][16]: d·Σq over each 16 elements
        public sbyte* Xq;
        public int N, Cols;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int start, int end)
        {
            int nb = Cols / 32;
            for (int p = start; p < end; p++)
            for (int j = 0; j < Panel; j++)
            {
                int t = p * Panel + j;
                for (int b = 0; b < nb; b++)
                {
                    long blockIndex = (long)p * nb + b;
                    sbyte* dst = Xq + blockIndex * 512 + 4 * j;     // group g of this token at dst + 64 g
                    if (t >= N)
                    {
                        for (int g = 0; g < 8; g++) *(int*)(dst + 64 * g) = 0;
                        Dx[blockIndex * Panel + j] = 0;
                        Sx[blockIndex * Panel + j] = 0;
                        Sx16[blockIndex * 2 * Panel + j] = 0;
                        Sx16[blockIndex * 2 * Panel + Panel + j] = 0;
                        continue;
                    }
                    float* src = X + (long)t * Cols + 32 * b;
                    var v0 = Vector512.Load(src);
                    var v1 = Vector512.Load(src + 16);
                    float amax = MaxAcross(Vector512.Max(Vector512.Abs(v0), Vector512.Abs(v1)));
                    float d = amax / 127, id = d != 0 ? 1 / d : 0;
                    // vcvtps2dq rounds to nearest even (the default MXCSR mode), like ActQ8.QuantizeQ8_0.
                    var q0 = Avx512F.ConvertToVector512Int32(v0 * id);
                    var q1 = Avx512F.ConvertToVector512Int32(v1 * id);
                    var b0 = Avx512F.ConvertToVector128SByte(q0).AsInt32();   // 16 int8 = 4 groups of 4
                    var b1 = Avx512F.ConvertToVector128SByte(q1).AsInt32();
                    *(int*)(dst) = b0.GetElement(0); *(int*)(dst + 64) = b0.GetElement(1);
                    *(int*)(dst + 128) = b0.GetElement(2); *(int*)(dst + 192) = b0.GetElement(3);
                    *(int*)(dst + 256) = b1.GetElement(0); *(int*)(dst + 320) = b1.GetElement(1);
                    *(int*)(dst + 384) = b1.GetElement(2); *(int*)(dst + 448) = b1.GetElement(3);
                    int s0 = Vector512.Sum(q0), s1 = Vector512.Sum(q1);
                    Dx[blockIndex * Panel + j] = d;
                    Sx[blockIndex * Panel + j] = d * (s0 + s1);
                    Sx16[blockIndex * 2 * Panel + j] = d * s0;
                    Sx16[blockIndex * 2 * Panel + Panel + j] = d * s1;
                }
            }
        }

        private static float MaxAcross(Vector512<float> v)
        {
            var m = Vector256.Max(v.GetLower(), v.GetUpper());
            var h = Vector128.Max(m.GetLower(), m.GetUpper());
            h = Vector128.Max(h, Vector128.Shuffle(h, Vector128.Create(2, 3, 0, 1)));
            h = Vector128.Max(h, Vector128.Shuffle(h, Vector128.Create(1, 0, 3, 2)));
            return h.ToScalar();
        }
    }

    private sealed class Job : IRangeJob
    {
        [ThreadStatic] private static byte[]? _tile, _ct;
        public WeightMatrix W = null!;
        public float* Y, Dx, Sx, Sx16;
        public sbyte* Xq;
        public int N, NPad;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int start, int end)
        {
            var w = W;
            int rows = w.Rows, cols = w.Cols, nb = cols / 32, nPad = NPad, n = N;
            // Unpacked tile: q bytes [64][256] (low plane), high plane [64][256] (8-bit formats only), then d and m
            // floats [64][8] each.
            // (Q6_K: d and m per 16 elements, [64][16] each; ScaleStride says which.)
            byte* tile = Scratch.Get(ref _tile, 2 * RowBlock * KBlock + 4 * RowBlock * BlocksPerSlice * sizeof(float));
            byte* high = tile + RowBlock * KBlock;
            bool split = SplitPlanes(w.Type), halves = HalfBlockScales(w.Type);
            int ss = halves ? 2 * BlocksPerSlice : BlocksPerSlice;   // scale stride per row
            float* wd = (float*)(tile + 2 * RowBlock * KBlock), wm = wd + RowBlock * ss;
            float* ct = (float*)Scratch.Get(ref _ct, (long)RowBlock * nPad * sizeof(float));
            for (int rb = start; rb < end; rb++)
            {
                int r0 = rb * RowBlock, nr = Math.Min(RowBlock, rows - r0);
                int nrPad = (nr + RowStep - 1) / RowStep * RowStep;
                for (int k0 = 0; k0 < cols; k0 += KBlock)
                {
                    int nBlocks = Math.Min(KBlock, cols - k0) / 32, b0 = k0 / 32;
                    for (int r = 0; r < nr; r++) Int8Tiles.Unpack(w, r0 + r, b0, nBlocks, tile + r * KBlock, high + r * KBlock, wd + r * ss, wm + r * ss);
                    for (int r = nr; r < nrPad; r++)
                    {
                        new Span<byte>(tile + r * KBlock, KBlock).Clear();
                        new Span<byte>(high + r * KBlock, KBlock).Clear();
                        new Span<float>(wd + r * ss, ss).Clear();
                        new Span<float>(wm + r * ss, ss).Clear();
                    }
                    bool first = k0 == 0;
                    for (int t0 = 0; t0 < nPad; t0 += TokenStep)
                    {
                        long pa = (long)(t0 / Panel) * nb + b0, pb = pa + nb;   // (panel, block) indices
                        for (int r = 0; r < nrPad; r += RowStep)
                        {
                            if (halves)
                            {
                                for (int h = 0; h < RowStep; h += 2)
                                    Micro2x32SplitHalves(tile + (r + h) * KBlock, high + (r + h) * KBlock, wd + (r + h) * ss, wm + (r + h) * ss, nBlocks,
                                        Xq + pa * 512, Xq + pb * 512, Dx + pa * Panel, Dx + pb * Panel, Sx16 + pa * 2 * Panel, Sx16 + pb * 2 * Panel,
                                        ct + (long)(r + h) * nPad + t0, nPad, first);
                            }
                            else if (split)
                            {
                                // two rows at a time: two planes need twice the int16 accumulators
                                for (int h = 0; h < RowStep; h += 2)
                                    Micro2x32Split(tile + (r + h) * KBlock, high + (r + h) * KBlock, wd + (r + h) * BlocksPerSlice, wm + (r + h) * BlocksPerSlice, nBlocks,
                                        Xq + pa * 512, Xq + pb * 512, Dx + pa * Panel, Dx + pb * Panel, Sx + pa * Panel, Sx + pb * Panel,
                                        ct + (long)(r + h) * nPad + t0, nPad, first);
                            }
                            else
                            {
                                Micro4x32(tile + r * KBlock, wd + r * BlocksPerSlice, wm + r * BlocksPerSlice, nBlocks,
                                    Xq + pa * 512, Xq + pb * 512, Dx + pa * Panel, Dx + pb * Panel, Sx + pa * Panel, Sx + pb * Panel,
                                    ct + (long)r * nPad + t0, nPad, first);
                            }
                        }
                    }
                }
                for (int r = 0; r < nr; r++)
                {
                    float* c = ct + (long)r * nPad;
                    for (int t = 0; t < n; t++) Y[(long)t * rows + r0 + r] = c[t];
                }
            }
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
            var da = Vector512.Load(dxa + Panel * b);
            var db = Vector512.Load(dxb + Panel * b);
            var sa = Vector512.Load(sxa + Panel * b);
            var sb = Vector512.Load(sxb + Panel * b);
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

    /// <summary>
    /// Two rows × 32 tokens of an 8-bit format split into nibble planes (see <see cref="SplitPlanes"/>): each plane
    /// accumulates in int16 like the 4-bit kernel; the high plane's sums are weighted by 16 in vpmaddwd.
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
            var da = Vector512.Load(dxa + Panel * b);
            var db = Vector512.Load(dxb + Panel * b);
            var sa = Vector512.Load(sxa + Panel * b);
            var sb = Vector512.Load(sxb + Panel * b);
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

    /// <summary>
    /// As <see cref="Micro2x32Split"/> for a format with a scale per 16 elements (Q6_K): the int16 sums are scaled after
    /// each half block (4 groups of 4 k); wd/wm hold one value per half block and sxa/sxb the activations' d·Σq per
    /// half block (32 floats per block: 16 tokens × 2 halves).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro2x32SplitHalves(byte* wl, byte* wh, float* wd, float* wm, int nBlocks, sbyte* xa, sbyte* xb,
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
        int rowStride = 2 * BlocksPerSlice;
        for (int b = 0; b < nBlocks; b++)
        {
            var da = Vector512.Load(dxa + Panel * b);
            var db = Vector512.Load(dxb + Panel * b);
            for (int half = 0; half < 2; half++)
            {
                Vector512<short> l00 = default, l01 = default, l10 = default, l11 = default;
                Vector512<short> h00 = default, h01 = default, h10 = default, h11 = default;
                byte* pl = wl + 32 * b + 16 * half, ph = wh + 32 * b + 16 * half;
                sbyte* pa = xa + 512 * b + 256 * half, pb = xb + 512 * b + 256 * half;
                for (int g = 0; g < 4; g++)
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
                var sa = Vector512.Load(sxa + 2 * Panel * b + Panel * half);
                var sb = Vector512.Load(sxb + 2 * Panel * b + Panel * half);
                int si = 2 * b + half;
                ScaleSplit(ref f00, ref f01, l00, l01, h00, h01, wd[si], wm[si], da, db, sa, sb, ones, sixteens);
                ScaleSplit(ref f10, ref f11, l10, l11, h10, h11, wd[rowStride + si], wm[rowStride + si], da, db, sa, sb, ones, sixteens);
            }
        }
        f00.Store(c); f01.Store(c + 16);
        f10.Store(c + ldc); f11.Store(c + ldc + 16);
    }
}
