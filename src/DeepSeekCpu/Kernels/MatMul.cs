using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// The one entry for linear layers: y[n, rows] = x[n, cols] · Wᵀ for any weight format.
/// Small n (decoding) runs the matrix-vector kernels (<see cref="Gemv"/>: memory-bound, each weight byte read once,
/// integer dot products against activations quantized once); larger n (prompt processing) runs the tiled
/// matrix-matrix kernel (<see cref="Gemm"/>: compute-bound). The instruction-set body is chosen once per process
/// (<see cref="KernelInfo.Path"/>); rows are split across the shared worker pool; nothing is allocated per call.
/// </summary>
public static unsafe class MatMul
{
    /// <summary>
    /// From this many tokens on, the tiled GEMM is used (below it, the GEMV kernel per token); 0 (the default) picks
    /// per format from measurements on this machine (bench `crossover`, Zen 5, 2 threads): 10 tokens where the int8
    /// GEMM runs (16 for Q6_K), 6 for the AVX2 int8 GEMM, 16 for the float GEMM, whose per-call dequantization pays
    /// off only over more tokens.
    /// </summary>
    public static int GemmMinTokens { get; set; }

    internal static bool UsesGemm(DType t, int n, KernelPath path)
    {
        if (path == KernelPath.Scalar) return false;
        if (GemmMinTokens > 0) return n >= GemmMinTokens;
        if (path == KernelPath.Avx512 && X86.GemmInt8Avx512.Supports(t)) return n >= (t == DType.Q6_K ? 16 : 10);
        if (UsesInt8GemmAvx2(t, path)) return n >= 6;
        if (UsesInt8GemmNeon(t, path)) return n >= 8;    // not measured on Arm hardware: the AVX2 crossover, rounded up   // bench crossover, AVX-512 off: Q4_0 GEMV 300 µs/token, GEMM 260 at n = 4
        return n >= 16;
    }

    private static bool UsesInt8GemmAvx2(DType t, KernelPath path) =>
        path is KernelPath.Avx2 or KernelPath.Avx2Vnni && X86.GemmInt8Avx2.Supports(t);

    private static bool UsesInt8GemmNeon(DType t, KernelPath path) =>
        path == KernelPath.NeonDp && Arm.GemmInt8Neon.Supports(t);

    /// <summary>Whether this call quantizes activations to 8 bits (integer kernels) or keeps them float32.</summary>
    internal static bool QuantizesActivations(DType t, int n, KernelPath path) =>
        t.IsQuantized() && (!UsesGemm(t, n, path) || (path == KernelPath.Avx512 && X86.GemmInt8Avx512.Supports(t)) || UsesInt8GemmAvx2(t, path) || UsesInt8GemmNeon(t, path));

    public static void Multiply(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int n) =>
        Multiply(w, x, y, n, KernelInfo.Path);

    /// <summary>As <see cref="Multiply(WeightMatrix, ReadOnlySpan{float}, Span{float}, int)"/> on a chosen path
    /// (tests run every path this machine has; <paramref name="path"/> must be in <see cref="KernelInfo.Available"/>).</summary>
    internal static void Multiply(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int n, KernelPath path)
    {
        if (n < 0) throw new ArgumentOutOfRangeException(nameof(n));
        if (x.Length < (long)n * w.Cols) throw new ArgumentException($"{w.Name}: input has {x.Length} values, expected {n} x {w.Cols}");
        if (y.Length < (long)n * w.Rows) throw new ArgumentException($"{w.Name}: output has {y.Length} values, expected {n} x {w.Rows}");
        if (n == 0 || w.Rows == 0) return;
        fixed (float* px = x, py = y)
        {
            if (!UsesGemm(w.Type, n, path)) Gemv.Run(w, px, py, n, path);
            else if (path == KernelPath.Avx512 && X86.GemmInt8Avx512.Supports(w.Type)) GemmInt8<X86.GemmInt8Avx512>.Run(w, px, py, n);
            else if (UsesInt8GemmAvx2(w.Type, path)) GemmInt8<X86.GemmInt8Avx2>.Run(w, px, py, n);
            else if (UsesInt8GemmNeon(w.Type, path)) GemmInt8<Arm.GemmInt8Neon>.Run(w, px, py, n);
            else Gemm.Run(w, px, py, n, path);
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
            if (UsesGemm(batch.W[i].Type, batch.N[i], path)) anyGemm = true; else anyGemv = true;
        }
        if (anyGemv && !anyGemm) { Gemv.Run(batch, path); return; }
        var rest = anyGemv ? (_rest ??= new MatMulBatch()) : null;
        rest?.Clear(0);
        for (int i = 0; i < batch.Count; i++)
        {
            var w = batch.W[i];
            int n = batch.N[i];
            if (n == 0) continue;
            if (!UsesGemm(w.Type, n, path)) { rest!.Add(w, (float*)batch.X[i], (float*)batch.Y[i], n); continue; }
            Multiply(w, new ReadOnlySpan<float>((float*)batch.X[i], n * w.Cols), new Span<float>((float*)batch.Y[i], n * w.Rows), n, path);
        }
        if (rest != null) { Gemv.Run(rest, path); rest.Clear(0); }
    }

    [ThreadStatic] private static MatMulBatch? _rest;
}
