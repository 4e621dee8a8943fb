using System.Diagnostics;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Bench;

/// <summary>
/// `crossover [--no-repack] [--threads N] [--cpu-time] [--formats Q4_0,Q8_0] [--n 1,2,4]`: time per token of the GEMV path and the
/// GEMM path for small n (the per-format crossovers in MatMul.Plan), and of what MatMul.Multiply runs (the GEMM with a
/// tail on the GEMV, MatMul.GemmTokens). The matrices get an interleaved copy where the path
/// has a group body, as models do by default (`--repack on`), so the GEMV side is the multi-token group body;
/// `--no-repack` times the row bodies over the stored layout. `--cpu-time` times by the process's CPU time (with
/// `--threads 1`, for a host shared with other work).
/// </summary>
internal static class Crossover
{
    public static int Run(string[] args)
    {
        int at = Array.IndexOf(args, "--threads");
        if (at >= 0) Threading.WorkerPool.Configure(int.Parse(args[at + 1]));
        _cpuTime = args.Contains("--cpu-time");
        at = Array.IndexOf(args, "--formats");
        var formats = at >= 0 ? args[at + 1].Split(',').Select(Enum.Parse<DType>).ToArray() : [DType.Q4_0, DType.Q8_0, DType.Q4_K, DType.Q6_K, DType.BF16];
        at = Array.IndexOf(args, "--n");
        // around every crossover in MatMul.Plan: the AVX-512 int8 GEMM runs 32 tokens per micro-kernel call, so its
        // cost per call is flat from 1 to 32 tokens
        int[] counts = at >= 0 ? args[at + 1].Split(',').Select(int.Parse).ToArray() : [1, 2, 4, 8, 12, 16, 24, 32, 48, 64];
        foreach (var type in formats)
        {
            using var w = BenchWeights.Make(type, 8960, 1536);
            bool x16 = !args.Contains("--no-repack") && Kernels.Repack.Interleave.Attach(w, KernelInfo.Path) > 0;
            var line = $"{type + (x16 ? " x16" : ""),-10} us/token gemv|gemm|planned:";
            foreach (int n in counts)
            {
                var x = BenchWeights.Activations(n * 1536);
                var y = new float[n * 8960];
                double gemv = Time(() => MatMul.Multiply(w, x, y, n, KernelInfo.Path, gemmMinTokens: int.MaxValue)) / n;  // always GEMV
                double gemm = Time(() => MatMul.Multiply(w, x, y, n, KernelInfo.Path, gemmMinTokens: 1)) / n;             // always GEMM
                double planned = Time(() => MatMul.Multiply(w, x, y, n, KernelInfo.Path)) / n;                      // as models run it
                line += $"  n={n} {gemv * 1e6:F0}|{gemm * 1e6:F0}|{planned * 1e6:F0}";
            }
            Console.WriteLine(line);
        }
        return 0;
    }

    private static bool _cpuTime;

    private static double Time(Action a)
    {
        a();
        double best = double.MaxValue;
        var sw = Stopwatch.StartNew();
        for (int runs = 0; runs < 3 || sw.Elapsed.TotalSeconds < 0.2; runs++)
        {
            long t0 = Stopwatch.GetTimestamp();
            var cpu0 = _cpuTime ? Environment.CpuUsage.TotalTime : default;
            a();
            best = Math.Min(best, _cpuTime ? (Environment.CpuUsage.TotalTime - cpu0).TotalSeconds : Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        return best;
    }
}
