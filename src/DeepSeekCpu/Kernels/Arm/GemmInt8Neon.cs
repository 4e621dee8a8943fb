using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.Arm;

/// <summary>
/// Integer matrix-matrix product for 4-bit weights (Q4_0, Q4_1, Q4_K) on Arm64 with the dot-product extension (sdot,
/// ARMv8.2 DotProd: Apple M1 and later, Graviton 2 and later), the prompt-processing path there. The scheme of the x86
/// int8 GEMMs with sdot in place of vpmaddubsw:
/// <list type="bullet">
/// <item>Weight tiles of 64 rows × 256 columns are unpacked once to bytes q (0..15) with per-32 d and m
/// (<see cref="Int8Tiles.Unpack"/>) and reused for every token.</item>
/// <item>Activations are quantized once per call to int8 with a float scale per 32 (RNE, Q8_0 style) and packed so one
/// 16-byte load holds 4 consecutive k of 4 tokens: Xq[panel][block][k/4][token][k%4].</item>
/// <item>Micro-kernel (4 rows × 8 tokens): per 4 k, a broadcast of 4 weight bytes per row and sdot against each
/// token panel (4 products into each int32 lane, exact), then per block C += d_w·d_x·Σq·qx + m_w·(d_x·Σqx).</item>
/// </list>
/// Checked against the float reference under qemu (tests/DeepSeekCpu.Kernels.Tests on neon-dp); its speed has not been
/// measured on Arm hardware.
/// </summary>
internal static unsafe class GemmInt8Neon
{
    private const int Panel = 4;         // tokens per packed panel: one 128-bit register of int32 lanes
    private const int TokenStep = 8;     // tokens per micro-kernel call (two panels)
    private const int RowStep = 4;
    private const int RowBlock = 64;
    private const int KBlock = 256;
    private const int BlocksPerSlice = KBlock / 32;

    public static bool Supports(DType t) => t is DType.Q4_0 or DType.Q4_1 or DType.Q4_K;

    [ThreadStatic] private static byte[]? _acts;
    [ThreadStatic] private static PackJob? _pack;
    [ThreadStatic] private static Job? _job;

    public static void Run(WeightMatrix w, float* x, float* y, int n)
    {
        int cols = w.Cols, nb = cols / 32;
        int nPad = (n + TokenStep - 1) / TokenStep * TokenStep, panels = nPad / Panel;
        long xqBytes = (long)panels * nb * 128, scaleFloats = (long)panels * nb * Panel;
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

    /// <summary>Quantizes and packs 4 tokens per panel (padding tokens are zero).</summary>
    private sealed class PackJob : IRangeJob
    {
        public float* X, Dx, Sx;
        public sbyte* Xq;
        public int N, Cols;

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
                    sbyte* dst = Xq + blockIndex * 128 + 4 * j;     // group g (4 k) of this token at dst + 16 g
                    if (t >= N)
                    {
                        for (int g = 0; g < 8; g++) *(int*)(dst + 16 * g) = 0;
                        Dx[blockIndex * Panel + j] = 0;
                        Sx[blockIndex * Panel + j] = 0;
                        continue;
                    }
                    float* src = X + (long)t * Cols + 32 * b;
                    float amax = 0;
                    for (int k = 0; k < 32; k++) amax = MathF.Max(amax, MathF.Abs(src[k]));
                    float d = amax / 127, id = d != 0 ? 1 / d : 0;
                    int sum = 0;
                    for (int k = 0; k < 32; k++)
                    {
                        int q = (int)MathF.Round(src[k] * id);               // round half to even, as ActQ8
                        dst[16 * (k / 4) + (k % 4)] = (sbyte)q;
                        sum += q;
                    }
                    Dx[blockIndex * Panel + j] = d;
                    Sx[blockIndex * Panel + j] = d * sum;
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

        public void Run(int start, int end)
        {
            var w = W;
            int rows = w.Rows, cols = w.Cols, nb = cols / 32, nPad = NPad, n = N;
            byte* tile = Scratch.Get(ref _tile, 2 * RowBlock * KBlock + 2 * RowBlock * BlocksPerSlice * sizeof(float));
            byte* high = tile + RowBlock * KBlock;   // unused by 4-bit formats
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
                    for (int t0 = 0; t0 < nPad; t0 += TokenStep)
                    {
                        long pa = (long)(t0 / Panel) * nb + b0, pb = pa + nb;   // (panel, block) indices
                        for (int r = 0; r < nrPad; r += RowStep)
                            Micro4x8(tile + r * KBlock, wd + r * BlocksPerSlice, wm + r * BlocksPerSlice, nBlocks,
                                Xq + pa * 128, Xq + pb * 128, Dx + pa * Panel, Dx + pb * Panel, Sx + pa * Panel, Sx + pb * Panel,
                                ct + (long)r * nPad + t0, nPad, first);
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

    /// <summary>C[4 rows, 8 tokens] (+)= Σ over nBlocks blocks; xa/xb are the two token panels (128 bytes per block).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro4x8(byte* wq, float* wd, float* wm, int nBlocks, sbyte* xa, sbyte* xb,
        float* dxa, float* dxb, float* sxa, float* sxb, float* c, int ldc, bool first)
    {
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
                v = Vector128.Create(*(uint*)(w0 + KBlock + 4 * g)).AsSByte();
                a1a = Dp.DotProduct(a1a, v, x0); a1b = Dp.DotProduct(a1b, v, x1);
                v = Vector128.Create(*(uint*)(w0 + 2 * KBlock + 4 * g)).AsSByte();
                a2a = Dp.DotProduct(a2a, v, x0); a2b = Dp.DotProduct(a2b, v, x1);
                v = Vector128.Create(*(uint*)(w0 + 3 * KBlock + 4 * g)).AsSByte();
                a3a = Dp.DotProduct(a3a, v, x0); a3b = Dp.DotProduct(a3b, v, x1);
            }
            var da = Vector128.Load(dxa + Panel * b);
            var db = Vector128.Load(dxb + Panel * b);
            var sa = Vector128.Load(sxa + Panel * b);
            var sb = Vector128.Load(sxb + Panel * b);
            Scale(ref f0a, ref f0b, a0a, a0b, wd[b], wm[b], da, db, sa, sb);
            Scale(ref f1a, ref f1b, a1a, a1b, wd[BlocksPerSlice + b], wm[BlocksPerSlice + b], da, db, sa, sb);
            Scale(ref f2a, ref f2b, a2a, a2b, wd[2 * BlocksPerSlice + b], wm[2 * BlocksPerSlice + b], da, db, sa, sb);
            Scale(ref f3a, ref f3b, a3a, a3b, wd[3 * BlocksPerSlice + b], wm[3 * BlocksPerSlice + b], da, db, sa, sb);
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
