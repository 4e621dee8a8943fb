using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Matrix-matrix products (prompt processing): compute-bound, so work is tiled for reuse.
/// <list type="bullet">
/// <item>X [n, K] is packed once per call into panels of 16 tokens, k-major: Xp[panel][k][16], so one vector load
/// gives one column of 16 tokens.</item>
/// <item>Each thread takes blocks of 64 weight rows; per 256-column slice it dequantizes those rows to float32
/// (64 KiB, L2-resident) once and reuses the slice for every token.</item>
/// <item>The micro-kernel keeps a rows × tokens tile of C in registers: per k it loads the tokens' column and
/// broadcasts one weight per row (outer-product form, no horizontal sums). The tile accumulates in a
/// row-major scratch Ct[64, nPad] across slices and is transposed into Y once at the end.</item>
/// </list>
/// This is the GEMM of the formats the int8 GEMM (<see cref="GemmInt8{TMicro}"/>) does not take on a path (float
/// formats, Q5_0, Q5_K, Q8_K; on AVX2 and Arm64 also Q8_0 and Q6_K), and of every format on NEON without DotProd; the
/// dequantization here is amortized over n tokens.
/// </summary>
internal static unsafe class Gemm
{
    public const int Panel = 16;
    public const int RowBlock = 64;
    public const int KBlock = 256;

    [ThreadStatic] private static byte[]? _packScratch;
    [ThreadStatic] private static Job? _job;
    [ThreadStatic] private static PackJob? _packJob;

    /// <summary>Tokens per micro-kernel call (a multiple of <see cref="Panel"/>).</summary>
    private static int TokenStep(KernelPath p) => p == KernelPath.Avx512 ? 32 : 16;

    /// <summary>Rows per micro-kernel call.</summary>
    private static int RowStep(KernelPath p) => p == KernelPath.Avx512 ? 8 : 4;

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

        var job = _job ??= new Job();
        job.W = w; job.Xp = xp; job.Y = y; job.N = n; job.NPad = nPad; job.Path = path;
        WorkerPool.Shared.Run(job, (w.Rows + RowBlock - 1) / RowBlock, grain: 1);
        job.W = null!;
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

    private sealed class Job : IRangeJob
    {
        [ThreadStatic] private static byte[]? _tile, _ct;
        public WeightMatrix W = null!;
        public float* Xp, Y;
        public int N, NPad;
        public KernelPath Path;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int start, int end)
        {
            var w = W;
            int rows = w.Rows, cols = w.Cols, nPad = NPad, n = N;
            int rowStep = RowStep(Path), tokenStep = TokenStep(Path);
            float* tile = (float*)Scratch.Get(ref _tile, RowBlock * KBlock * sizeof(float));   // [64][256]
            float* ct = (float*)Scratch.Get(ref _ct, (long)RowBlock * nPad * sizeof(float));     // [64][nPad]
            for (int rb = start; rb < end; rb++)
            {
                int r0 = rb * RowBlock, nr = Math.Min(RowBlock, rows - r0);
                int nrPad = (nr + rowStep - 1) / rowStep * rowStep;
                for (int k0 = 0; k0 < cols; k0 += KBlock)
                {
                    int len = Math.Min(KBlock, cols - k0);
                    for (int r = 0; r < nr; r++) WeightDecode.Segment(w, r0 + r, k0, len, tile + r * KBlock);
                    for (int r = nr; r < nrPad; r++) new Span<float>(tile + r * KBlock, len).Clear();
                    bool first = k0 == 0;
                    for (int t0 = 0; t0 < nPad; t0 += tokenStep)
                    {
                        float* xa = Xp + ((long)(t0 / Panel) * cols + k0) * Panel;
                        for (int r = 0; r < nrPad; r += rowStep)
                        {
                            float* c = ct + (long)r * nPad + t0;
                            switch (Path)
                            {
                                case KernelPath.Avx512: Micro8x32V512(tile + r * KBlock, xa, xa + (long)cols * Panel, len, c, nPad, first); break;
                                case KernelPath.Avx2 or KernelPath.Avx2Vnni: Micro4x16V256(tile + r * KBlock, xa, len, c, nPad, first); break;
                                default: Micro4x16V128(tile + r * KBlock, xa, len, c, nPad, first); break;
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

    // ---------- micro-kernels: C[rows, tokens] (+)= W[rows, k] · Xpᵀ[k, tokens] ----------
    // w: rows at stride KBlock; xa (and xb): a packed panel at this k-slice (16 floats per k); c: row stride ldc.

    /// <summary>AVX-512: 8 rows × 32 tokens (two panels) = 16 zmm accumulators; per k 2 loads, 8 broadcasts, 16 FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro8x32V512(float* w, float* xa, float* xb, int len, float* c, int ldc, bool first)
    {
        Vector512<float> c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
        if (first)
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = c60 = c61 = c70 = c71 = Vector512<float>.Zero;
        }
        else
        {
            c00 = Vector512.Load(c); c01 = Vector512.Load(c + 16);
            c10 = Vector512.Load(c + ldc); c11 = Vector512.Load(c + ldc + 16);
            c20 = Vector512.Load(c + 2 * ldc); c21 = Vector512.Load(c + 2 * ldc + 16);
            c30 = Vector512.Load(c + 3 * ldc); c31 = Vector512.Load(c + 3 * ldc + 16);
            c40 = Vector512.Load(c + 4 * ldc); c41 = Vector512.Load(c + 4 * ldc + 16);
            c50 = Vector512.Load(c + 5 * ldc); c51 = Vector512.Load(c + 5 * ldc + 16);
            c60 = Vector512.Load(c + 6 * ldc); c61 = Vector512.Load(c + 6 * ldc + 16);
            c70 = Vector512.Load(c + 7 * ldc); c71 = Vector512.Load(c + 7 * ldc + 16);
        }
        for (int k = 0; k < len; k++)
        {
            var a = Vector512.Load(xa + k * Panel);
            var b = Vector512.Load(xb + k * Panel);
            var s = Vector512.Create(w[k]); c00 = Vector512.FusedMultiplyAdd(a, s, c00); c01 = Vector512.FusedMultiplyAdd(b, s, c01);
            s = Vector512.Create(w[KBlock + k]); c10 = Vector512.FusedMultiplyAdd(a, s, c10); c11 = Vector512.FusedMultiplyAdd(b, s, c11);
            s = Vector512.Create(w[2 * KBlock + k]); c20 = Vector512.FusedMultiplyAdd(a, s, c20); c21 = Vector512.FusedMultiplyAdd(b, s, c21);
            s = Vector512.Create(w[3 * KBlock + k]); c30 = Vector512.FusedMultiplyAdd(a, s, c30); c31 = Vector512.FusedMultiplyAdd(b, s, c31);
            s = Vector512.Create(w[4 * KBlock + k]); c40 = Vector512.FusedMultiplyAdd(a, s, c40); c41 = Vector512.FusedMultiplyAdd(b, s, c41);
            s = Vector512.Create(w[5 * KBlock + k]); c50 = Vector512.FusedMultiplyAdd(a, s, c50); c51 = Vector512.FusedMultiplyAdd(b, s, c51);
            s = Vector512.Create(w[6 * KBlock + k]); c60 = Vector512.FusedMultiplyAdd(a, s, c60); c61 = Vector512.FusedMultiplyAdd(b, s, c61);
            s = Vector512.Create(w[7 * KBlock + k]); c70 = Vector512.FusedMultiplyAdd(a, s, c70); c71 = Vector512.FusedMultiplyAdd(b, s, c71);
        }
        c00.Store(c); c01.Store(c + 16);
        c10.Store(c + ldc); c11.Store(c + ldc + 16);
        c20.Store(c + 2 * ldc); c21.Store(c + 2 * ldc + 16);
        c30.Store(c + 3 * ldc); c31.Store(c + 3 * ldc + 16);
        c40.Store(c + 4 * ldc); c41.Store(c + 4 * ldc + 16);
        c50.Store(c + 5 * ldc); c51.Store(c + 5 * ldc + 16);
        c60.Store(c + 6 * ldc); c61.Store(c + 6 * ldc + 16);
        c70.Store(c + 7 * ldc); c71.Store(c + 7 * ldc + 16);
    }

    /// <summary>AVX2: 4 rows × 16 tokens = 8 ymm accumulators (16 registers in all).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro4x16V256(float* w, float* xa, int len, float* c, int ldc, bool first)
    {
        Vector256<float> c00, c01, c10, c11, c20, c21, c30, c31;
        if (first)
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = Vector256<float>.Zero;
        }
        else
        {
            c00 = Vector256.Load(c); c01 = Vector256.Load(c + 8);
            c10 = Vector256.Load(c + ldc); c11 = Vector256.Load(c + ldc + 8);
            c20 = Vector256.Load(c + 2 * ldc); c21 = Vector256.Load(c + 2 * ldc + 8);
            c30 = Vector256.Load(c + 3 * ldc); c31 = Vector256.Load(c + 3 * ldc + 8);
        }
        for (int k = 0; k < len; k++)
        {
            var a = Vector256.Load(xa + k * Panel);
            var b = Vector256.Load(xa + k * Panel + 8);
            var s = Vector256.Create(w[k]); c00 = Vector256.FusedMultiplyAdd(a, s, c00); c01 = Vector256.FusedMultiplyAdd(b, s, c01);
            s = Vector256.Create(w[KBlock + k]); c10 = Vector256.FusedMultiplyAdd(a, s, c10); c11 = Vector256.FusedMultiplyAdd(b, s, c11);
            s = Vector256.Create(w[2 * KBlock + k]); c20 = Vector256.FusedMultiplyAdd(a, s, c20); c21 = Vector256.FusedMultiplyAdd(b, s, c21);
            s = Vector256.Create(w[3 * KBlock + k]); c30 = Vector256.FusedMultiplyAdd(a, s, c30); c31 = Vector256.FusedMultiplyAdd(b, s, c31);
        }
        c00.Store(c); c01.Store(c + 8);
        c10.Store(c + ldc); c11.Store(c + ldc + 8);
        c20.Store(c + 2 * ldc); c21.Store(c + 2 * ldc + 8);
        c30.Store(c + 3 * ldc); c31.Store(c + 3 * ldc + 8);
    }

    /// <summary>NEON: 4 rows × 16 tokens = 16 q-register accumulators (of 32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro4x16V128(float* w, float* xa, int len, float* c, int ldc, bool first)
    {
        Vector128<float> c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33;
        if (first)
        {
            c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = Vector128<float>.Zero;
        }
        else
        {
            c00 = Vector128.Load(c); c01 = Vector128.Load(c + 4); c02 = Vector128.Load(c + 8); c03 = Vector128.Load(c + 12);
            float* r1 = c + ldc, r2 = c + 2 * ldc, r3 = c + 3 * ldc;
            c10 = Vector128.Load(r1); c11 = Vector128.Load(r1 + 4); c12 = Vector128.Load(r1 + 8); c13 = Vector128.Load(r1 + 12);
            c20 = Vector128.Load(r2); c21 = Vector128.Load(r2 + 4); c22 = Vector128.Load(r2 + 8); c23 = Vector128.Load(r2 + 12);
            c30 = Vector128.Load(r3); c31 = Vector128.Load(r3 + 4); c32 = Vector128.Load(r3 + 8); c33 = Vector128.Load(r3 + 12);
        }
        for (int k = 0; k < len; k++)
        {
            float* xk = xa + k * Panel;
            var a0 = Vector128.Load(xk); var a1 = Vector128.Load(xk + 4); var a2 = Vector128.Load(xk + 8); var a3 = Vector128.Load(xk + 12);
            var s = Vector128.Create(w[k]);
            c00 = Vector128.FusedMultiplyAdd(a0, s, c00); c01 = Vector128.FusedMultiplyAdd(a1, s, c01); c02 = Vector128.FusedMultiplyAdd(a2, s, c02); c03 = Vector128.FusedMultiplyAdd(a3, s, c03);
            s = Vector128.Create(w[KBlock + k]);
            c10 = Vector128.FusedMultiplyAdd(a0, s, c10); c11 = Vector128.FusedMultiplyAdd(a1, s, c11); c12 = Vector128.FusedMultiplyAdd(a2, s, c12); c13 = Vector128.FusedMultiplyAdd(a3, s, c13);
            s = Vector128.Create(w[2 * KBlock + k]);
            c20 = Vector128.FusedMultiplyAdd(a0, s, c20); c21 = Vector128.FusedMultiplyAdd(a1, s, c21); c22 = Vector128.FusedMultiplyAdd(a2, s, c22); c23 = Vector128.FusedMultiplyAdd(a3, s, c23);
            s = Vector128.Create(w[3 * KBlock + k]);
            c30 = Vector128.FusedMultiplyAdd(a0, s, c30); c31 = Vector128.FusedMultiplyAdd(a1, s, c31); c32 = Vector128.FusedMultiplyAdd(a2, s, c32); c33 = Vector128.FusedMultiplyAdd(a3, s, c33);
        }
        c00.Store(c); c01.Store(c + 4); c02.Store(c + 8); c03.Store(c + 12);
        float* o1 = c + ldc, o2 = c + 2 * ldc, o3 = c + 3 * ldc;
        c10.Store(o1); c11.Store(o1 + 4); c12.Store(o1 + 8); c13.Store(o1 + 12);
        c20.Store(o2); c21.Store(o2 + 4); c22.Store(o2 + 8); c23.Store(o2 + 12);
        c30.Store(o3); c31.Store(o3 + 4); c32.Store(o3 + 8); c33.Store(o3 + 12);
    }
}
