using System.Runtime.CompilerServices;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// The instruction-set part of a 4-bit int8 GEMM: how many tokens a packed panel holds and the micro-kernel over
/// 4 unpacked weight rows × <see cref="TokenStep"/> tokens. Implemented by X86/GemmInt8Avx2 and Arm/GemmInt8Neon.
/// </summary>
internal unsafe interface IInt8Micro
{
    /// <summary>Tokens per packed panel (one register of int32 lanes).</summary>
    static abstract int Panel { get; }
    /// <summary>Tokens per micro-kernel call: one or two panels.</summary>
    static abstract int TokenStep { get; }

    /// <summary>
    /// C[4 rows, TokenStep tokens] (+)= Σ over nBlocks blocks. wq: 4 rows of unpacked bytes (stride
    /// <see cref="GemmInt8{TMicro}.KBlock"/>); wd/wm: their per-block d and m (stride BlocksPerSlice); xq: the first
    /// panel's packed quants at the first block (32·Panel bytes per block); dx/sx: its per-block scales and d·Σq
    /// (Panel floats per block); the next panel starts <paramref name="nb"/> blocks further in all three.
    /// </summary>
    static abstract void Micro4(byte* wq, float* wd, float* wm, int nBlocks, sbyte* xq, float* dx, float* sx, int nb,
        float* c, int ldc, bool first);
}

/// <summary>
/// Integer matrix-matrix product for 4-bit weights (Q4_0, Q4_1, Q4_K), the prompt-processing path of AVX2 and Arm64
/// DotProd (X86/GemmInt8Avx512 has its own driver, which also splits 8-bit formats into nibble planes):
/// <list type="bullet">
/// <item>Weight tiles of 64 rows × 256 columns are unpacked once to bytes q (0..15) with per-32 d and m, w = d·q + m
/// (<see cref="Int8Tiles.Unpack"/>), and reused for every token.</item>
/// <item>Activations are quantized once per call to int8 with a float scale per 32 (round half to even, Q8_0 style, as
/// ActQ8) and packed so one load holds 4 consecutive k of a panel's tokens: Xq[panel][block][k/4][token][k%4].</item>
/// <item>The ISA's micro-kernel (<typeparamref name="TMicro"/>) forms Σq·qx per block in integers and accumulates
/// C += d_w·d_x·Σq·qx + m_w·(d_x·Σqx) in float.</item>
/// </list>
/// </summary>
internal static unsafe class GemmInt8<TMicro> where TMicro : IInt8Micro
{
    private const int RowStep = 4;       // rows per micro-kernel call
    private const int RowBlock = 64;
    public const int KBlock = 256;       // columns per unpacked slice
    public const int BlocksPerSlice = KBlock / 32;

    public static bool Supports(DType t) => t is DType.Q4_0 or DType.Q4_1 or DType.Q4_K;

    [ThreadStatic] private static byte[]? _acts;
    [ThreadStatic] private static PackJob? _pack;
    [ThreadStatic] private static Job? _job;

    public static void Run(WeightMatrix w, float* x, float* y, int n)
    {
        int cols = w.Cols, nb = cols / 32, panel = TMicro.Panel;
        int nPad = (n + TMicro.TokenStep - 1) / TMicro.TokenStep * TMicro.TokenStep, panels = nPad / panel;
        long xqBytes = (long)panels * nb * 32 * panel, scaleFloats = (long)panels * nb * panel;
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

    /// <summary>Quantizes and packs one panel of tokens per item (padding tokens are zero).</summary>
    private sealed class PackJob : IRangeJob
    {
        public float* X, Dx, Sx;
        public sbyte* Xq;
        public int N, Cols;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int start, int end)
        {
            int nb = Cols / 32, panel = TMicro.Panel, group = 4 * panel;   // bytes per 4 k of a panel
            for (int p = start; p < end; p++)
            for (int j = 0; j < panel; j++)
            {
                int t = p * panel + j;
                for (int b = 0; b < nb; b++)
                {
                    long blockIndex = (long)p * nb + b;
                    sbyte* dst = Xq + blockIndex * 8 * group + 4 * j;     // group g (4 k) of this token at dst + group·g
                    if (t >= N)
                    {
                        for (int g = 0; g < 8; g++) *(int*)(dst + group * g) = 0;
                        Dx[blockIndex * panel + j] = 0;
                        Sx[blockIndex * panel + j] = 0;
                        continue;
                    }
                    float* src = X + (long)t * Cols + 32 * b;
                    float amax = 0;
                    for (int k = 0; k < 32; k++) amax = MathF.Max(amax, MathF.Abs(src[k]));
                    float d = amax / 127, id = d != 0 ? 1 / d : 0;
                    int sum = 0;
                    for (int k = 0; k < 32; k++)
                    {
                        int q = (int)MathF.Round(src[k] * id);                // round half to even, as ActQ8
                        dst[group * (k / 4) + (k % 4)] = (sbyte)q;
                        sum += q;
                    }
                    Dx[blockIndex * panel + j] = d;
                    Sx[blockIndex * panel + j] = d * sum;
                }
            }
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
            int rows = w.Rows, cols = w.Cols, nb = cols / 32, nPad = NPad, n = N, panel = TMicro.Panel;
            // Unpacked tile: q bytes [64][256], the high plane Unpack also takes (unused by 4-bit formats), then d and
            // m floats [64][8] each.
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
                    for (int t0 = 0; t0 < nPad; t0 += TMicro.TokenStep)
                    {
                        long pa = (long)(t0 / panel) * nb + b0;   // (panel, block) index
                        for (int r = 0; r < nrPad; r += RowStep)
                            TMicro.Micro4(tile + r * KBlock, wd + r * BlocksPerSlice, wm + r * BlocksPerSlice, nBlocks,
                                Xq + pa * 32 * panel, Dx + pa * panel, Sx + pa * panel, nb, ct + (long)r * nPad + t0, nPad, first);
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
}
