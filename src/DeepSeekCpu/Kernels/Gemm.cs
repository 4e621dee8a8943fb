using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;
using static DeepSeekCpu.Kernels.FloatDot;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// The float GEMM (prompt processing) of the formats the int8 GEMM (<see cref="GemmInt8{TMicro}"/>) does not take on a
/// path (float formats, Q5_0, Q8_K, the low-bit K- and i-quants; Q5_K without AVX-512; on AVX2 and Arm64 also Q8_0 and Q6_K), and of
/// every format on NEON without DotProd; it runs in the tiled driver (<see cref="TiledGemm{TKernel}"/>):
/// <list type="bullet">
/// <item>X [n, K] is packed once per call into panels of 16 tokens, k-major: Xp[panel][k][16], so one vector load
/// gives one column of 16 tokens.</item>
/// <item>Per block of 64 rows and 256-column slice the rows are dequantized to float32 (64 KiB, L2-resident) once
/// (<see cref="WeightDecode"/>) and the slice is reused for every token: the dequantization is amortized over n.</item>
/// <item>The micro-kernel keeps a rows × tokens tile of C in registers: per k it loads the tokens' column and
/// broadcasts one weight per row (outer-product form, no horizontal sums), at 512, 256 or 128 bits.</item>
/// </list>
/// </summary>
internal static unsafe class Gemm
{
    public const int Panel = 16;
    public const int RowBlock = TiledGemm<FloatTile<W512, Vector512<float>>>.RowBlock;
    public const int KBlock = TiledGemm<FloatTile<W512, Vector512<float>>>.KBlock;

    [ThreadStatic] private static byte[]? _packScratch;
    [ThreadStatic] private static PackJob? _packJob;

    /// <summary>Tokens are padded to whole packed panels and whole micro-kernel steps (two vectors: 32 tokens at 512 bits).</summary>
    private static int TokenStep(KernelPath p) => p == KernelPath.Avx512 ? 2 * W512.Count : Panel;

    public static void Run(WeightMatrix w, float* x, float* y, int n, KernelPath path)
    {
        if (path == KernelPath.Scalar) throw new ArgumentException("the scalar path has no tiled GEMM; use Gemv");
        int cols = w.Cols;
        int step = TokenStep(path);
        int nPad = (n + step - 1) / step * step;
        float* xp = (float*)Scratch.Get(ref _packScratch, (long)nPad * cols * sizeof(float));
        var pack = _packJob ??= new PackJob();
        pack.X = x; pack.Xp = xp; pack.N = n; pack.Cols = cols;
        WorkerPool.Shared.Run(pack, nPad / Panel, grain: 1);

        switch (path)
        {
            case KernelPath.Avx512: TiledGemm<FloatTile<W512, Vector512<float>>>.Run(w, new(xp, cols), y, n, nPad); break;
            case KernelPath.Avx2 or KernelPath.Avx2Vnni: TiledGemm<FloatTile<W256, Vector256<float>>>.Run(w, new(xp, cols), y, n, nPad); break;
            default: TiledGemm<FloatTile<W128, Vector128<float>>>.Run(w, new(xp, cols), y, n, nPad); break;
        }
    }

    /// <summary>Xp[p][k][j] = X[16p + j][k] (zero for padding tokens).</summary>
    private sealed class PackJob : IRangeJob
    {
        public float* X, Xp;
        public int N, Cols;

        public void Run(int start, int end)
        {
            int cols = Cols;
            for (int p = start; p < end; p++)
            {
                float* dst = Xp + (long)p * cols * Panel;
                for (int j = 0; j < Panel; j++)
                {
                    int t = p * Panel + j;
                    if (t < N)
                    {
                        float* src = X + (long)t * cols;
                        for (int k = 0; k < cols; k++) dst[k * Panel + j] = src[k];
                    }
                    else
                    {
                        for (int k = 0; k < cols; k++) dst[k * Panel + j] = 0;
                    }
                }
            }
        }
    }

    /// <summary>The float tile at one width: rows dequantized to float32 [64][256], the packed tokens Xp.</summary>
    internal readonly struct FloatTile<TWidth, TVector>(float* xp, int cols) : ITileKernel
        where TWidth : IWidth<TVector> where TVector : unmanaged
    {
        private readonly float* _xp = xp;
        private readonly int _cols = cols;

        public static int RowStep => MicroRows<TWidth, TVector>();
        public static int TokenStep => 2 * TWidth.Count;
        public static long TileBytes(DType t) => RowBlock * KBlock * sizeof(float);

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Unpack(WeightMatrix w, int r0, int nr, int nrPad, int k0, int len, byte* tile)
        {
            float* f = (float*)tile;
            for (int r = 0; r < nr; r++) WeightDecode.Segment(w, r0 + r, k0, len, f + r * KBlock);
            for (int r = nr; r < nrPad; r++) new Span<float>(f + r * KBlock, len).Clear();
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Micro(WeightMatrix w, byte* tile, int r, int k0, int len, int t0, float* c, int ldc, bool first)
        {
            // the step's two vectors of tokens at this k-slice: t0 and t0 + Count (in the next panel at 512 bits)
            int t1 = t0 + TWidth.Count;
            float* xa = _xp + ((long)(t0 / Panel) * _cols + k0) * Panel + t0 % Panel;
            float* xb = _xp + ((long)(t1 / Panel) * _cols + k0) * Panel + t1 % Panel;
            Micro<TWidth, TVector>((float*)tile + r * KBlock, xa, xb, len, c, ldc, first);
        }
    }

    // ---------- micro-kernel: C[rows, tokens] (+)= W[rows, k] · Xpᵀ[k, tokens] ----------

    /// <summary>
    /// Rows per micro-kernel call: 8 rows × 2 vectors = 16 accumulators where the ISA has 32 vector registers
    /// (AVX-512, NEON), 4 rows × 2 vectors where it has 16 (AVX2: 8 accumulators, 2 loads and a broadcast fit).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int MicroRows<TWidth, TVector>() where TWidth : IWidth<TVector> where TVector : unmanaged =>
        TWidth.Count == 8 ? 4 : 8;

    /// <summary>
    /// Outer-product micro-kernel at one width: <see cref="MicroRows"/> rows × 2 vectors of tokens, in registers;
    /// per k 2 loads, one broadcast per row and 2 FMAs per row. w: rows at stride KBlock; xa, xb: the two token vectors
    /// at this k-slice (k stride Panel); c: the tile's first row, row stride ldc, the second vector at c + Count.
    /// The 4-row instantiation drops rows 4..7: <c>eight</c> is a constant of the instantiation.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro<TWidth, TVector>(float* w, float* xa, float* xb, int len, float* c, int ldc, bool first)
        where TWidth : IWidth<TVector> where TVector : unmanaged
    {
        bool eight = TWidth.Count != 8;   // MicroRows == 8, folded by the JIT
        int n = TWidth.Count;
        TVector c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = c60 = c61 = c70 = c71 = TWidth.Zero;
        if (!first)
        {
            c00 = TWidth.Load(c); c01 = TWidth.Load(c + n);
            c10 = TWidth.Load(c + ldc); c11 = TWidth.Load(c + ldc + n);
            c20 = TWidth.Load(c + 2 * ldc); c21 = TWidth.Load(c + 2 * ldc + n);
            c30 = TWidth.Load(c + 3 * ldc); c31 = TWidth.Load(c + 3 * ldc + n);
            if (eight)
            {
                c40 = TWidth.Load(c + 4 * ldc); c41 = TWidth.Load(c + 4 * ldc + n);
                c50 = TWidth.Load(c + 5 * ldc); c51 = TWidth.Load(c + 5 * ldc + n);
                c60 = TWidth.Load(c + 6 * ldc); c61 = TWidth.Load(c + 6 * ldc + n);
                c70 = TWidth.Load(c + 7 * ldc); c71 = TWidth.Load(c + 7 * ldc + n);
            }
        }
        for (int k = 0; k < len; k++)
        {
            var a = TWidth.Load(xa + k * Panel);
            var b = TWidth.Load(xb + k * Panel);
            var s = TWidth.Broadcast(w[k]); c00 = TWidth.Fma(a, s, c00); c01 = TWidth.Fma(b, s, c01);
            s = TWidth.Broadcast(w[KBlock + k]); c10 = TWidth.Fma(a, s, c10); c11 = TWidth.Fma(b, s, c11);
            s = TWidth.Broadcast(w[2 * KBlock + k]); c20 = TWidth.Fma(a, s, c20); c21 = TWidth.Fma(b, s, c21);
            s = TWidth.Broadcast(w[3 * KBlock + k]); c30 = TWidth.Fma(a, s, c30); c31 = TWidth.Fma(b, s, c31);
            if (eight)
            {
                s = TWidth.Broadcast(w[4 * KBlock + k]); c40 = TWidth.Fma(a, s, c40); c41 = TWidth.Fma(b, s, c41);
                s = TWidth.Broadcast(w[5 * KBlock + k]); c50 = TWidth.Fma(a, s, c50); c51 = TWidth.Fma(b, s, c51);
                s = TWidth.Broadcast(w[6 * KBlock + k]); c60 = TWidth.Fma(a, s, c60); c61 = TWidth.Fma(b, s, c61);
                s = TWidth.Broadcast(w[7 * KBlock + k]); c70 = TWidth.Fma(a, s, c70); c71 = TWidth.Fma(b, s, c71);
            }
        }
        TWidth.Store(c00, c); TWidth.Store(c01, c + n);
        TWidth.Store(c10, c + ldc); TWidth.Store(c11, c + ldc + n);
        TWidth.Store(c20, c + 2 * ldc); TWidth.Store(c21, c + 2 * ldc + n);
        TWidth.Store(c30, c + 3 * ldc); TWidth.Store(c31, c + 3 * ldc + n);
        if (eight)
        {
            TWidth.Store(c40, c + 4 * ldc); TWidth.Store(c41, c + 4 * ldc + n);
            TWidth.Store(c50, c + 5 * ldc); TWidth.Store(c51, c + 5 * ldc + n);
            TWidth.Store(c60, c + 6 * ldc); TWidth.Store(c61, c + 6 * ldc + n);
            TWidth.Store(c70, c + 7 * ldc); TWidth.Store(c71, c + 7 * ldc + n);
        }
    }
}
