using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// The one entry for linear layers: y[n, rows] = x[n, cols] · Wᵀ for any weight format.
/// Small n (decoding) runs the matrix-vector kernels (<see cref="Gemv"/>: memory-bound, each weight byte read once,
/// integer dot products against activations quantized once); larger n (prompt processing) runs the tiled
/// matrix-matrix kernel (<see cref="Gemm"/>: compute-bound). The instruction-set body is chosen once per process
/// (<see cref="KernelInfo.Path"/>); rows are split across the shared worker pool; nothing is allocated per call.
/// </summary>
internal static unsafe class MatMul
{
    /// <summary>
    /// Which kernel runs y[n, rows] = x[n, cols] · Wᵀ for weights of <paramref name="t"/> on <paramref name="path"/>:
    /// the one rule that picks GEMV or GEMM, and which GEMM. The GEMM's tile decode pays off only over enough tokens;
    /// from <paramref name="gemmMinTokens"/> tokens on when positive, otherwise from per-format crossovers measured with
    /// bench `crossover` (Zen 5, 2 threads): 10 tokens where the AVX-512 int8 GEMM runs (16 for Q6_K; 8 for Q5_K, whose
    /// GEMV runs one token per pass: Intel Xeon, fifteenth session, `crossover --threads 1 --cpu-time`, µs per token
    /// GEMV | GEMM n=4 866 | 1382, n=8 864 | 645), 6 for the AVX2 int8 GEMM, 16 for the float GEMM, whose per-call
    /// dequantization pays off only over more tokens. The scalar path has no tiled GEMM. Where the matrix has a
    /// multi-token GEMV body, <see cref="GemmTokens(WeightMatrix, int, KernelPath)"/> gives it the tokens short of a whole GEMM step (below 32 on
    /// AVX-512 every token), so these crossovers count for the matrices without one (the fused MoE GEMM,
    /// <see cref="ExpertGemm"/>, splits its entries' tokens the same way).
    /// </summary>
    internal static MatMulKernel Plan(DType t, int n, KernelPath path, int gemmMinTokens = 0)
    {
        if (path == KernelPath.Scalar) return MatMulKernel.Gemv;
        var (gemm, from) = path switch
        {
            // Q8_0: one vpdpbusd / sdot per 4 weight bytes (GemmQ8), before the nibble-plane split of GemmInt8Avx512
            KernelPath.Avx512 or KernelPath.Avx2Vnni when t == DType.Q8_0 && System.Runtime.Intrinsics.X86.AvxVnni.IsSupported => (MatMulKernel.GemmQ8Vnni, path == KernelPath.Avx512 ? 10 : 6),
            KernelPath.NeonDp when t == DType.Q8_0 => (MatMulKernel.GemmQ8Neon, 8),
            KernelPath.Avx512 when X86.GemmInt8Avx512.Supports(t) => (MatMulKernel.GemmInt8Avx512, t == DType.Q6_K ? 16 : t == DType.Q5_K ? 8 : 10),
            // bench crossover, AVX-512 off: Q4_0 GEMV 300 µs/token, GEMM 260 at n = 4
            KernelPath.Avx2 or KernelPath.Avx2Vnni when X86.GemmInt8Avx2.Supports(t) => (MatMulKernel.GemmInt8Avx2, 6),
            // not measured on Arm hardware: the AVX2 crossover, rounded up
            KernelPath.NeonDp when Arm.GemmInt8Neon.Supports(t) => (MatMulKernel.GemmInt8Neon, 8),
            _ => (MatMulKernel.GemmFloat, 16),
        };
        return n >= (gemmMinTokens > 0 ? gemmMinTokens : from) ? gemm : MatMulKernel.Gemv;
    }

    /// <summary><see cref="Plan(DType, int, KernelPath, int)"/> for <paramref name="w"/>: float32 activations
    /// (<see cref="ActivationPrecision.Float32"/>) never take an int8 GEMM.</summary>
    internal static MatMulKernel Plan(WeightMatrix w, int n, KernelPath path, int gemmMinTokens = 0)
    {
        var kernel = Plan(w.Type, n, path, gemmMinTokens);
        bool int8Gemm = kernel is not (MatMulKernel.Gemv or MatMulKernel.GemmFloat);
        return int8Gemm && w.Activations == ActivationPrecision.Float32 ? MatMulKernel.GemmFloat : kernel;
    }

    /// <summary>
    /// How many of <paramref name="n"/> tokens (the first ones) the GEMM takes, the rest going to the GEMV: none where
    /// <see cref="Plan(WeightMatrix, int, KernelPath, int)"/> picks the GEMV, all where it picks a GEMM, except for an
    /// int8 GEMM over a matrix with a multi-token GEMV body (<see cref="Repack.Interleave.GroupDots"/>). The GEMM's
    /// micro-kernel runs a whole step of tokens (32 on AVX-512: two 16-token panels; 8 on AVX2 and NEON) at the same
    /// cost however many of them are padding, while the multi-token GEMV costs about as much per token as the GEMM per
    /// token of a full step (bench `crossover --threads 1 --cpu-time`, 8960×1536 with its interleaved copy, µs per
    /// token GEMV | GEMM, AVX-512: Intel Xeon (fifteenth session) Q4_K n=16 125 | 223, n=24 125 | 151, n=32 126 | 114,
    /// n=48 127 | 142 (padded to 64), Q6_K n=32 222 | 223; Zen 4 (fourteenth) Q4_K n=16 122 | 254). So below one
    /// step the GEMV takes every token, and past the last whole step a tail of less than three quarters of a step.
    /// </summary>
    internal static int GemmTokens(WeightMatrix w, int n, KernelPath path) => GemmTokens(w, n, Plan(w, n, path), path);

    /// <summary><see cref="GemmTokens(WeightMatrix, int, KernelPath)"/> for the <paramref name="kernel"/> Plan picked
    /// for these n tokens; without <paramref name="split"/> a GEMM takes all tokens.</summary>
    internal static int GemmTokens(WeightMatrix w, int n, MatMulKernel kernel, KernelPath path, bool split = true)
    {
        if (kernel == MatMulKernel.Gemv) return 0;
        int step = kernel switch
        {
            MatMulKernel.GemmInt8Avx512 => X86.GemmInt8Avx512.TokenStep,
            MatMulKernel.GemmInt8Avx2 => X86.GemmInt8Avx2.TokenStep,
            MatMulKernel.GemmInt8Neon => Arm.GemmInt8Neon.TokenStep,
            _ => 0,
        };
        if (!split || step == 0 || w.Interleaved == null || Repack.Interleave.GroupDots(w.Type, path) == null) return n;
        int whole = n / step * step, tail = n - whole;
        return 4 * tail >= 3 * step ? n : whole;
    }

    public static void Multiply(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int n) =>
        Multiply(w, x, y, n, KernelInfo.Path);

    /// <summary>As <see cref="Multiply(WeightMatrix, ReadOnlySpan{float}, Span{float}, int)"/> on a chosen path
    /// (tests run every path this machine has; <paramref name="path"/> must be in <see cref="KernelInfo.Available"/>).</summary>
    /// <param name="gemmMinTokens">See <see cref="Plan"/> (bench `crossover` times both sides of the crossover).</param>
    internal static void Multiply(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int n, KernelPath path, int gemmMinTokens = 0)
    {
        if (n < 0) throw new ArgumentOutOfRangeException(nameof(n));
        if (x.Length < (long)n * w.Cols) throw new ArgumentException($"{w.Name}: input has {x.Length} values, expected {n} x {w.Cols}");
        if (y.Length < (long)n * w.Rows) throw new ArgumentException($"{w.Name}: output has {y.Length} values, expected {n} x {w.Rows}");
        if (n == 0 || w.Rows == 0) return;
        var kernel = Plan(w, n, path, gemmMinTokens);
        // the GEMM takes the first tokens (none, whole steps, or all), the GEMV the rest (gemmMinTokens: as Plan says)
        int gemm = GemmTokens(w, n, kernel, path, split: gemmMinTokens == 0);
        fixed (float* px = x, py = y)
        {
            if (gemm < n) Gemv.Run(w, px + (long)gemm * w.Cols, py + (long)gemm * w.Rows, n - gemm, path);
            if (gemm > 0)
                switch (kernel)
                {
                    case MatMulKernel.GemmInt8Avx512: GemmInt8<X86.GemmInt8Avx512>.Run(w, px, py, gemm); break;
                    case MatMulKernel.GemmInt8Avx2: GemmInt8<X86.GemmInt8Avx2>.Run(w, px, py, gemm); break;
                    case MatMulKernel.GemmInt8Neon: GemmInt8<Arm.GemmInt8Neon>.Run(w, px, py, gemm); break;
                    case MatMulKernel.GemmQ8Vnni: GemmQ8.Vnni(w, px, py, gemm); break;
                    case MatMulKernel.GemmQ8Neon: GemmQ8.Neon(w, px, py, gemm); break;
                    default: Gemm.Run(w, px, py, gemm, path); break;
                }
        }
        GC.KeepAlive(w);
    }

    /// <summary>Every product of <paramref name="batch"/>: one pool dispatch while they are matrix-vector products.</summary>
    public static void Multiply(MatMulBatch batch) => Multiply(batch, KernelInfo.Path);

    internal static void Multiply(MatMulBatch batch, KernelPath path)
    {
        if (batch.Count == 0) return;
        // Products with enough tokens for the tiled GEMM run one by one; the rest go to the GEMV in one dispatch.
        bool anyGemm = false, anyGemv = false;
        for (int i = 0; i < batch.Count; i++)
        {
            if (batch.N[i] == 0) continue;
            if (GemvOnly(batch.W[i], batch.N[i], path)) anyGemv = true; else anyGemm = true;
        }
        if (anyGemv && !anyGemm) { Gemv.Run(batch, path); return; }
        var rest = anyGemv ? (_rest ??= new MatMulBatch()) : null;
        rest?.Clear(0);
        for (int i = 0; i < batch.Count; i++)
        {
            var w = batch.W[i];
            int n = batch.N[i];
            if (n == 0) continue;
            if (GemvOnly(w, n, path)) { rest!.Add(w, (float*)batch.X[i], (float*)batch.Y[i], n); continue; }
            Multiply(w, new ReadOnlySpan<float>((float*)batch.X[i], n * w.Cols), new Span<float>((float*)batch.Y[i], n * w.Rows), n, path);
        }
        if (rest != null) { Gemv.Run(rest, path); rest.Clear(0); }
    }

    /// <summary>Whether <see cref="Multiply(WeightMatrix, ReadOnlySpan{float}, Span{float}, int, KernelPath, int)"/>
    /// would give all <paramref name="n"/> tokens to the GEMV.</summary>
    private static bool GemvOnly(WeightMatrix w, int n, KernelPath path) => GemmTokens(w, n, path) == 0;

    [ThreadStatic] private static MatMulBatch? _rest;
}

/// <summary>The kernel <see cref="MatMul.Plan"/> picks for one product.</summary>
internal enum MatMulKernel
{
    /// <summary>Matrix-vector kernels per token (<see cref="Kernels.Gemv"/>), memory-bound.</summary>
    Gemv,
    /// <summary>Tiled float GEMM (<see cref="Kernels.Gemm"/>): weight tiles dequantized to float32.</summary>
    GemmFloat,
    /// <summary>Tiled int8 GEMM with the AVX-512 micro-kernel.</summary>
    GemmInt8Avx512,
    /// <summary>Tiled int8 GEMM with the AVX2 micro-kernel.</summary>
    GemmInt8Avx2,
    /// <summary>Tiled int8 GEMM with the Arm64 DotProd micro-kernel.</summary>
    GemmInt8Neon,
    /// <summary>Tiled Q8_0 GEMM with AVX-VNNI (<see cref="Kernels.GemmQ8"/>).</summary>
    GemmQ8Vnni,
    /// <summary>Tiled Q8_0 GEMM with Arm64 DotProd.</summary>
    GemmQ8Neon,
}

internal static class MatMulKernelExtensions
{
    /// <summary>Whether the kernel quantizes activations to 8 bits (integer kernels) or keeps them float32.</summary>
    public static bool QuantizesActivations(this MatMulKernel k, DType t) =>
        k == MatMulKernel.Gemv ? t.IsQuantized() : k != MatMulKernel.GemmFloat;

    /// <summary>As above for the kernel of <paramref name="w"/> (float32 activations where it asks for them).</summary>
    public static bool QuantizesActivations(this MatMulKernel k, WeightMatrix w) =>
        w.Activations != ActivationPrecision.Float32 && k.QuantizesActivations(w.Type);
}
