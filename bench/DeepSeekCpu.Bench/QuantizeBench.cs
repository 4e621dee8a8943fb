using System.Diagnostics;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Bench;

/// <summary>`quantize`: time of Quantize.Matrix (BF16 source, all threads) per target type on an 8960x1536 matrix.</summary>
internal static class QuantizeBench
{
    public static int Run(string[] args)
    {
        using var src = BenchWeights.Make(DType.BF16, 8960, 1536);
        foreach (var t in new[] { DType.Q8_0, DType.Q4_0, DType.Q4_1, DType.Q5_0, DType.Q4_K, DType.Q5_K, DType.Q6_K })
        {
            var sw = Stopwatch.StartNew();
            using var q = Quantize.Matrix(src, t);
            double s = sw.Elapsed.TotalSeconds;
            Console.WriteLine($"{t,-5} {s * 1e3,8:F0} ms for 13.8M weights = {13.76e6 / s / 1e6,6:F1} M weights/s");
        }
        return 0;
    }
}
