using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.X86;

/// <summary>
/// Integer matrix-matrix product for 4-bit weights (Q4_0, Q4_1, Q4_K) on AVX2: the prompt-processing path of x86
/// machines without AVX-512. The same scheme as <see cref="GemmInt8Avx512"/> at half the width:
/// <list type="bullet">
/// <item>A tile of 64 rows × 256 columns is unpacked once to bytes q (0..15) with per-32 d and m (w = d·q + m), by
/// the shared <see cref="Int8Tiles.Unpack"/>, and reused for every token.</item>
/// <item>Activations are quantized once per call to int8 with a float scale per 32 (RNE, Q8_0 style) and packed so one
/// 32-byte load holds 4 consecutive k of 8 tokens: Xq[panel][block][k/4][token][k%4].</item>
/// <item>Micro-kernel (4 rows × 8 tokens): per 4 k, a broadcast of 4 weight bytes per row and vpmaddubsw against the
/// token vector, summed in int16 across the block (8 × 2·15·127 = 30480 fits), one vpmaddwd to int32, then
/// C += d_w·d_x·Σq·qx + m_w·(d_x·Σqx).</item>
/// </list>
/// 8-bit formats (Q8_0, Q6_K) keep the float GEMM here: their split into nibble planes doubles the int16 accumulators,
/// more than AVX2's 16 registers hold.
/// </summary>
internal static unsafe class GemmInt8Avx2
{
    private const int Panel = 8;         // tokens per packed panel: one 256-bit register of int32 lanes
    private const int RowStep = 4;       // rows per micro-kernel call
    private const int RowBlock = 64;
    private const int KBlock = 256;      // columns per unpacked slice
    private const int BlocksPerSlice = KBlock / 32;

    public static bool Supports(DType t) => t is DType.Q4_0 or DType.Q4_1 or DType.Q4_K;

    [ThreadStatic] private static byte[]? _acts;
    [ThreadStatic] private static PackJob? _pack;
    [ThreadStatic] private static Job? _job;

    public static void Run(WeightMatrix w, float* x, float* y, int n)
    {
        int cols = w.Cols, nb = cols / 32;
        int nPad = (n + Panel - 1) / Panel * Panel, panels = nPad / Panel;
        long xqBytes = (long)panels * nb * 256, scaleFloats = (long)panels * nb * Panel;
        byte* mem = Scratch.Get(ref _acts, xqBytes + 2 * scaleFloats * sizeof(float));
        var pack = _pack ??= new PackJob();
        pack.X = x; pack.N = n; pack.Cols = cols;
        pack.Xq = (sbyte*)mem; pack.Dx = (float*)(mem + xqBytes); pack.Sx = pack.Dx + scaleFloats;
        WorkerPool.Shared.Run(pack, panels, grain: 1);

        var job = _job ??= new Job();
        job.W = w; job.Y = y; job.N = n; job.NPad = nPad;
        job.Xq = pack.Xq; job.Dx = pack.Dx; job.Sx = pack.Sx;
        WorkerPool.Shared.Run(job, (w.Rows + RowBlock - 1) / RowBlock, grain: 1);
        job.W = null!;
    }

    /// <summary>Quantizes and packs 8 tokens per panel (padding tokens are zero).</summary>
    private sealed class PackJob : IRangeJob
    {
        public float* X, Dx, Sx;
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
                    sbyte* dst = Xq + blockIndex * 256 + 4 * j;     // group g (4 k) of this token at dst + 32 g
                    if (t >= N)
                    {
                        for (int g = 0; g < 8; g++) *(int*)(dst + 32 * g) = 0;
                        Dx[blockIndex * Panel + j] = 0;
                        Sx[blockIndex * Panel + j] = 0;
                        continue;
                    }
                    float* src = X + (long)t * Cols + 32 * b;
                    var amaxV = Vector256.Max(Vector256.Max(Vector256.Abs(Vector256.Load(src)), Vector256.Abs(Vector256.Load(src + 8))),
                                              Vector256.Max(Vector256.Abs(Vector256.Load(src + 16)), Vector256.Abs(Vector256.Load(src + 24))));
                    float amax = MaxAcross(amaxV);
                    float d = amax / 127, id = d != 0 ? 1 / d : 0;
                    int sum = 0;
                    for (int k = 0; k < 32; k++)
                    {
                        int q = (int)MathF.Round(src[k] * id);               // round half to even, as vcvtps2dq and ActQ8
                        dst[32 * (k / 4) + (k % 4)] = (sbyte)q;
                        sum += q;
                    }
                    Dx[blockIndex * Panel + j] = d;
                    Sx[blockIndex * Panel + j] = d * sum;
                }
            }
        }

        private static float MaxAcross(Vector256<float> v)
        {
            var h = Vector128.Max(v.GetLower(), v.GetUpper());
            h = Vector128.Max(h, Vector128.Shuffle(h, Vector128.Create(2, 3, 0, 1)));
            h = Vector128.Max(h, Vector128.Shuffle(h, Vector128.Create(1, 0, 3, 2)));
            return h.ToScalar();
        }
    }

    private sealed class Job : IRangeJob
    {
        [ThreadStatic] private static byte[]? _tile, _ct;
        public WeightMatrix W = null!;
        public float* Y, Dx, Sx;
        public sbyte* Xq;
        public int N, NPad;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int start, int end)
        {
            var w = W;
            int rows = w.Rows, cols = w.Cols, nb = cols / 32, nPad = NPad, n = N;
            // Unpacked tile: q bytes [64][256] (the high plane Unpack also takes is unused for 4-bit formats), then
            // d and m floats [64][8] each.
            byte* tile = Scratch.Get(ref _tile, 2 * RowBlock * KBlock + 2 * RowBlock * BlocksPerSlice * sizeof(float));
            byte* high = tile + RowBlock * KBlock;
            float* wd = (float*)(tile + 2 * RowBlock * KBlock), wm = wd + RowBlock * BlocksPerSlice;
            float* ct = (float*)Scratch.Get(ref _ct, (long)RowBlock * nPad * sizeof(float));
            for (int rb = start; rb < end; rb++)
            {
                int r0 = rb * RowBlock, nr = Math.Min(RowBlock, rows - r0);
                int nrPad = (nr + RowStep - 1) / RowStep * RowStep;
                for (int k0 = 0; k0 < cols; k0 += KBlock)
                {
                    int nBlocks = Math.Min(KBlock, cols - k0) / 32, b0 = k0 / 32;
                    for (int r = 0; r < nr; r++)
                        Int8Tiles.Unpack(w, r0 + r, b0, nBlocks, tile + r * KBlock, high + r * KBlock, wd + r * BlocksPerSlice, wm + r * BlocksPerSlice);
                    for (int r = nr; r < nrPad; r++)
                    {
                        new Span<byte>(tile + r * KBlock, KBlock).Clear();
                        new Span<float>(wd + r * BlocksPerSlice, BlocksPerSlice).Clear();
                        new Span<float>(wm + r * BlocksPerSlice, BlocksPerSlice).Clear();
                    }
                    bool first = k0 == 0;
                    for (int t0 = 0; t0 < nPad; t0 += Panel)
                    {
                        long pa = (long)(t0 / Panel) * nb + b0;   // (panel, block) index
                        for (int r = 0; r < nrPad; r += RowStep)
                            Micro4x8(tile + r * KBlock, wd + r * BlocksPerSlice, wm + r * BlocksPerSlice, nBlocks,
                                Xq + pa * 256, Dx + pa * Panel, Sx + pa * Panel, ct + (long)r * nPad + t0, nPad, first);
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
    /// C[4 rows, 8 tokens] (+)= Σ over nBlocks blocks. wq: 4 rows of unpacked bytes (stride KBlock); wd/wm: their
    /// per-block d and m (stride BlocksPerSlice); xq: the token panel's packed quants at the first block (256 bytes
    /// per block); dx/sx: its per-block scales and d·Σq (8 floats per block).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro4x8(byte* wq, float* wd, float* wm, int nBlocks, sbyte* xq, float* dx, float* sx, float* c, int ldc, bool first)
    {
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
                var x = Vector256.Load(p + 32 * g);
                a0 += Avx2.MultiplyAddAdjacent(Vector256.Create(*(uint*)(w0 + 4 * g)).AsByte(), x);
                a1 += Avx2.MultiplyAddAdjacent(Vector256.Create(*(uint*)(w0 + KBlock + 4 * g)).AsByte(), x);
                a2 += Avx2.MultiplyAddAdjacent(Vector256.Create(*(uint*)(w0 + 2 * KBlock + 4 * g)).AsByte(), x);
                a3 += Avx2.MultiplyAddAdjacent(Vector256.Create(*(uint*)(w0 + 3 * KBlock + 4 * g)).AsByte(), x);
            }
            var d = Vector256.Load(dx + Panel * b);
            var s = Vector256.Load(sx + Panel * b);
            Scale(ref f0, a0, wd[b], wm[b], d, s, ones);
            Scale(ref f1, a1, wd[BlocksPerSlice + b], wm[BlocksPerSlice + b], d, s, ones);
            Scale(ref f2, a2, wd[2 * BlocksPerSlice + b], wm[2 * BlocksPerSlice + b], d, s, ones);
            Scale(ref f3, a3, wd[3 * BlocksPerSlice + b], wm[3 * BlocksPerSlice + b], d, s, ones);
        }
        f0.Store(c); f1.Store(c + ldc); f2.Store(c + 2 * ldc); f3.Store(c + 3 * ldc);
    }

    /// <summary>f += d_w·d_x·Σq·qx + m_w·(d_x·Σqx) for one row and one token panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scale(ref Vector256<float> f, Vector256<short> acc, float dw, float mw, Vector256<float> dx, Vector256<float> sx, Vector256<short> ones) =>
        f = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(acc, ones)), dx * Vector256.Create(dw), Fma.MultiplyAdd(sx, Vector256.Create(mw), f));
}
