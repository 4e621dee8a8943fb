using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// One tile of a tiled GEMM: how weight rows are decoded into a per-thread tile, and the micro-kernel that multiplies
/// <see cref="RowStep"/> rows of that tile with <see cref="TokenStep"/> tokens of the packed activations it holds.
/// Implemented by the float GEMM (<see cref="Gemm"/>: rows dequantized to float32) and the int8 GEMM
/// (<see cref="GemmInt8{TMicro}"/>: rows unpacked to bytes with per-block d and m).
/// </summary>
internal unsafe interface ITileKernel
{
    /// <summary>Weight rows per micro-kernel call.</summary>
    static abstract int RowStep { get; }
    /// <summary>Tokens per micro-kernel call; the driver pads the tokens to a multiple of it.</summary>
    static abstract int TokenStep { get; }
    /// <summary>Bytes of the per-thread tile for <see cref="TiledGemm{TKernel}.RowBlock"/> rows of weights of type <paramref name="t"/>.</summary>
    static abstract long TileBytes(DType t);
    /// <summary>Decodes rows [r0, r0 + nr) × columns [k0, k0 + len) into <paramref name="tile"/>; rows nr..nrPad are zero.</summary>
    static abstract void Unpack(WeightMatrix w, int r0, int nr, int nrPad, int k0, int len, byte* tile);
    /// <summary>C[RowStep rows from r, TokenStep tokens from t0] (+)= the tile's rows · the tokens over the slice at k0 of
    /// <paramref name="len"/> columns; C has row stride <paramref name="ldc"/> and is overwritten when <paramref name="first"/>.
    /// <paramref name="w"/> is the matrix the tile was unpacked from (its format, and whatever else decides how the tile
    /// was laid out).</summary>
    void Micro(WeightMatrix w, byte* tile, int r, int k0, int len, int t0, float* c, int ldc, bool first);
}

/// <summary>
/// How a tile kernel's activations are packed, for callers that multiply one packed input by several matrices
/// (<see cref="ExpertGemm"/>'s gate and up).
/// </summary>
internal unsafe interface ITilePack<TTile> where TTile : struct, ITileKernel
{
    /// <summary>Token t = 0..n as the quantized row <paramref name="index"/>[t] of <paramref name="rows"/> (negative: a zero
    /// padding token), packed for matrices of type <paramref name="t"/>; n is a multiple of TTile.TokenStep.</summary>
    static abstract TTile Pack(in ActQ8Rows rows, int* index, int n, DType t);
    /// <summary>Whether matrices of type <paramref name="t"/> take Q8_K-style activations (<see cref="IInt8Micro.UsesQ8K"/>);
    /// one packing serves only matrices that agree.</summary>
    static virtual bool UsesQ8K(DType t) => false;
}

/// <summary>
/// The tiled matrix-matrix driver (prompt processing: compute-bound, so work is tiled for reuse), one for every tile
/// kernel: each thread takes blocks of <see cref="RowBlock"/> weight rows; per slice of <see cref="KBlock"/> columns it
/// decodes those rows once into an L2-resident tile and runs the micro-kernel over every token step and row step,
/// accumulating into a row-major scratch Ct[64, nPad + CtPad] that is transposed into Y once at the end.
/// </summary>
internal static unsafe class TiledGemm<TKernel> where TKernel : struct, ITileKernel
{
    public const int RowBlock = 64;
    public const int KBlock = 256;
    /// <summary>
    /// Floats (one cache line) added to Ct's row stride: at nPad = 512 its rows lay 2 KiB apart, so the 64 rows of a
    /// token column fell into 2 of L1's 64 sets and the transpose missed L1 on every read; one line more puts
    /// consecutive rows in consecutive sets (perf, 1.5B Q4_0 pp512: Transpose 6.0% → 4.3% of the samples).
    /// </summary>
    public const int CtPad = 16;

    [ThreadStatic] private static Job? _job;

    /// <summary>Y[n, rows] = X · Wᵀ, with X already packed in <paramref name="kernel"/> for <paramref name="nPad"/> tokens (a multiple of TokenStep).</summary>
    public static void Run(WeightMatrix w, in TKernel kernel, float* y, int n, int nPad)
    {
        var job = _job ??= new Job();
        job.W = w; job.K = kernel; job.Y = y; job.N = n; job.NPad = nPad;
        WorkerPool.Shared.Run(job, (w.Rows + RowBlock - 1) / RowBlock, grain: 1);
        job.W = null!;
    }

    private sealed class Job : IRangeJob
    {
        [ThreadStatic] private static byte[]? _tile, _ct;
        public WeightMatrix W = null!;
        public TKernel K;
        public float* Y;
        public int N, NPad;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int start, int end)
        {
            var w = W;
            var k = K;
            var type = w.Type;
            int rows = w.Rows, cols = w.Cols, nPad = NPad, n = N, rowStep = TKernel.RowStep, tokenStep = TKernel.TokenStep;
            byte* tile = Scratch.Get(ref _tile, TKernel.TileBytes(type));
            int ldc = nPad + CtPad;
            float* ct = (float*)Scratch.Get(ref _ct, (long)RowBlock * ldc * sizeof(float));   // [64][nPad + CtPad]
            for (int rb = start; rb < end; rb++)
            {
                int r0 = rb * RowBlock, nr = Math.Min(RowBlock, rows - r0);
                int nrPad = (nr + rowStep - 1) / rowStep * rowStep;
                for (int k0 = 0; k0 < cols; k0 += KBlock)
                {
                    int len = Math.Min(KBlock, cols - k0);
                    TKernel.Unpack(w, r0, nr, nrPad, k0, len, tile);
                    bool first = k0 == 0;
                    for (int t0 = 0; t0 < nPad; t0 += tokenStep)
                    for (int r = 0; r < nrPad; r += rowStep)
                        k.Micro(w, tile, r, k0, len, t0, ct + (long)r * ldc + t0, ldc, first);
                }
                Transpose(ct, ldc, nr, n, Y + r0, rows);
            }
        }
    }

    /// <summary>
    /// Y[t, r] = Ct[r, t] for r &lt; nr, t &lt; n (Ct with row stride ldc, Y with ldy). Token by token, so each token's nr results
    /// are written as one contiguous run and Ct (L2-resident) is the side read with a stride: writing Y row by row of
    /// Ct instead stores one float per token row of Y, a cache line (and often a page) apart, and cost a quarter of
    /// the driver's time at n = 512 (perf, BF16 1536x1536, one thread). With AVX, 8 × 8 blocks are transposed in
    /// registers (8 loads and 8 stores of 8 floats instead of 64 of one); only moves, so the values are the same.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Transpose(float* ct, int ldc, int nr, int n, float* y, int ldy)
    {
        int t8 = 0, r8 = 0;
        if (Avx.IsSupported)
        {
            t8 = n / 8 * 8; r8 = nr / 8 * 8;
            for (int t = 0; t < t8; t += 8)
            for (int r = 0; r < r8; r += 8)
                Transpose8x8(ct + (long)r * ldc + t, ldc, y + (long)t * ldy + r, ldy);
        }
        for (int t = 0; t < n; t++)   // what the blocks left: the last nr % 8 rows of every token, all rows of the last n % 8 tokens
        {
            float* dst = y + (long)t * ldy, src = ct + t;
            for (int r = t < t8 ? r8 : 0; r < nr; r++) dst[r] = src[(long)r * ldc];
        }
    }

    /// <summary>dst[j, i] = src[i, j] for i, j &lt; 8: unpack pairs, then 64-bit pairs, then 128-bit halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* src, int lds, float* dst, int ldd)
    {
        var r0 = Avx.LoadVector256(src); var r1 = Avx.LoadVector256(src + lds);
        var r2 = Avx.LoadVector256(src + 2 * lds); var r3 = Avx.LoadVector256(src + 3 * lds);
        var r4 = Avx.LoadVector256(src + 4 * lds); var r5 = Avx.LoadVector256(src + 5 * lds);
        var r6 = Avx.LoadVector256(src + 6 * lds); var r7 = Avx.LoadVector256(src + 7 * lds);
        Vector256<float> a0 = Avx.UnpackLow(r0, r1), a1 = Avx.UnpackHigh(r0, r1), a2 = Avx.UnpackLow(r2, r3), a3 = Avx.UnpackHigh(r2, r3);
        Vector256<float> a4 = Avx.UnpackLow(r4, r5), a5 = Avx.UnpackHigh(r4, r5), a6 = Avx.UnpackLow(r6, r7), a7 = Avx.UnpackHigh(r6, r7);
        Vector256<float> b0 = Avx.Shuffle(a0, a2, 0x44), b1 = Avx.Shuffle(a0, a2, 0xEE), b2 = Avx.Shuffle(a1, a3, 0x44), b3 = Avx.Shuffle(a1, a3, 0xEE);
        Vector256<float> b4 = Avx.Shuffle(a4, a6, 0x44), b5 = Avx.Shuffle(a4, a6, 0xEE), b6 = Avx.Shuffle(a5, a7, 0x44), b7 = Avx.Shuffle(a5, a7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(b0, b4, 0x20)); Avx.Store(dst + ldd, Avx.Permute2x128(b1, b5, 0x20));
        Avx.Store(dst + 2 * ldd, Avx.Permute2x128(b2, b6, 0x20)); Avx.Store(dst + 3 * ldd, Avx.Permute2x128(b3, b7, 0x20));
        Avx.Store(dst + 4 * ldd, Avx.Permute2x128(b0, b4, 0x31)); Avx.Store(dst + 5 * ldd, Avx.Permute2x128(b1, b5, 0x31));
        Avx.Store(dst + 6 * ldd, Avx.Permute2x128(b2, b6, 0x31)); Avx.Store(dst + 7 * ldd, Avx.Permute2x128(b3, b7, 0x31));
    }
}
