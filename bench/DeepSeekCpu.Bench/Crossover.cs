using System.Diagnostics;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Bench;

/// <summary>
/// `crossover [--no-repack]`: time per token of the GEMV path and the GEMM path for small n (the per-format crossovers
/// in MatMul.Plan). The matrices get an interleaved copy where the path has a group body, as models do by default
/// (`--repack on`), so the GEMV side is the multi-token group body; `--no-repack` times the row bodies over the stored layout.
/// </summary>
internal static class Crossover
{
    public static int Run(string[] args)
    {
        foreach (var type in new[] { DType.Q4_0, DType.Q8_0, DType.Q4_K, DType.Q6_K, DType.BF16 })
        {
            using var w = BenchWeights.Make(type, 8960, 1536);
            bool x16 = !args.Contains("--no-repack") && Kernels.Repack.Interleave.Attach(w, KernelInfo.Path) > 0;
            var line = $"{type + (x16 ? " x16" : ""),-10} us/token gemv|gemm:";
            foreach (int n in new[] { 1, 2, 4, 8, 16, 32 })
            {
                var x = BenchWeights.Activations(n * 1536);
                var y = new float[n * 8960];
                double gemv = Time(() => MatMul.Multiply(w, x, y, n, KernelInfo.Path, gemmMinTokens: int.MaxValue)) / n;  // always GEMV
                double gemm = Time(() => MatMul.Multiply(w, x, y, n, KernelInfo.Path, gemmMinTokens: 1)) / n;             // always GEMM
                line += $"  n={n} {gemv * 1e6:F0}|{gemm * 1e6:F0}";
            }
            Console.WriteLine(line);
        }
        return 0;
    }

    private static double Time(Action a)
    {
        a();
        double best = double.MaxValue;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < 0.2) { long t0 = Stopwatch.GetTimestamp(); a(); best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds); }
        return best;
    }
}
