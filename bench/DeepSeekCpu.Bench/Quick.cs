using System.Diagnostics;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Platform;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Bench;

/// <summary>
/// `quick`: a few seconds of timing without BenchmarkDotNet. Matrix-vector in GB/s of weight bytes read (compare with
/// the measured read bandwidth), matrix-matrix in GFLOP/s (2·rows·cols·n per call).
/// </summary>
internal static class Quick
{
    public static int Run(string[] args)
    {
        int threads = ArgInt(args, "--threads", Environment.ProcessorCount);
        int n = ArgInt(args, "--n", 512);
        double seconds = ArgInt(args, "--ms", 300) / 1000.0;
        var formats = (Arg(args, "--formats") ?? "Q4_0,Q8_0,Q4_K,Q6_K,BF16").Split(',').Select(Enum.Parse<DType>).ToArray();
        bool gemm = !args.Contains("--no-gemm"), gemv = !args.Contains("--no-gemv");
        // --cpu-time: each run timed by the process's CPU time instead of the wall clock, for a host shared with other
        // work (with --threads 1 a run's CPU time is its own work; the minimum over runs still sets the number)
        _cpuTime = args.Contains("--cpu-time");
        WorkerPool.Configure(threads);
        Console.WriteLine($"kernel path {KernelInfo.ActivePath}, {threads} threads");
        Console.WriteLine($"memory read bandwidth: {MemoryBandwidth.Measure(threads, 1L << 30):F1} GB/s ({threads} threads), {MemoryBandwidth.Measure(1, 1L << 30):F1} GB/s (1 thread)");
        foreach (var type in formats)
        {
            if (gemv)
            {
                foreach (var (name, rows, cols) in BenchWeights.Qwen15BShapes)
                {
                    using var w = BenchWeights.Make(type, rows, cols);
                    var x = BenchWeights.Activations(cols);
                    var y = new float[rows];
                    double s = Time(() => MatMul.Multiply(w, x, y, 1), seconds);
                    Console.WriteLine($"{type,-8} gemv {name,-24} {w.ByteLength / s / 1e9,7:F1} GB/s  {s * 1e6,9:F1} us");
                    // the same matrix with its interleaved copy (what --repack on loads), timed right after
                    if (Kernels.Repack.Interleave.Attach(w, KernelInfo.Path) > 0)
                    {
                        double s16 = Time(() => MatMul.Multiply(w, x, y, 1), seconds);
                        Console.WriteLine($"{type,-8} gemv {name + " x16",-24} {w.ByteLength / s16 / 1e9,7:F1} GB/s  {s16 * 1e6,9:F1} us  ({s / s16:F2}x)");
                    }
                }
            }
            if (gemm)
            {
                double flops = 0, time = 0;
                foreach (var (name, rows, cols) in BenchWeights.Qwen15BShapes.Take(4))
                {
                    using var w = BenchWeights.Make(type, rows, cols);
                    var x = BenchWeights.Activations(n * cols);
                    var y = new float[n * rows];
                    double s = Time(() => MatMul.Multiply(w, x, y, n), seconds, minRuns: 2);
                    double f = 2.0 * rows * cols * n;
                    // weight per layer of R1-Distill-Qwen-1.5B: q,o 1536²; k,v 256x1536; gate,up 8960x1536; down 1536x8960
                    int perLayer = name.StartsWith("attn_q") ? 2 : name.StartsWith("attn_k") ? 2 : name.StartsWith("ffn_gate") ? 2 : 1;
                    flops += perLayer * f; time += perLayer * s;
                    Console.WriteLine($"{type,-8} gemm {name,-24} n={n} {f / s / 1e9,7:F1} GFLOP/s  {s * 1e3,8:F1} ms");
                    // the same matrix with the decode kernels' interleaved copy, which the int8 tiles then read
                    if (args.Contains("--x16") && Kernels.Repack.Interleave.Attach(w, KernelInfo.Path) > 0)
                    {
                        double s16 = Time(() => MatMul.Multiply(w, x, y, n), seconds, minRuns: 2);
                        Console.WriteLine($"{type,-8} gemm {name + " x16",-24} n={n} {f / s16 / 1e9,7:F1} GFLOP/s  {s16 * 1e3,8:F1} ms  ({s / s16:F2}x)");
                    }
                }
                double perToken = time / n * 28;
                Console.WriteLine($"{type,-8} gemm layer mix {flops / time / 1e9:F1} GFLOP/s -> 28 layers of linear layers alone: {1 / perToken:F0} tok/s prompt (n={n})");
            }
        }
        return 0;
    }

    private static bool _cpuTime;

    private static double Time(Action a, double seconds, int minRuns = 5)
    {
        a(); a();
        var sw = Stopwatch.StartNew();
        int runs = 0;
        double best = double.MaxValue;
        while (runs < minRuns || sw.Elapsed.TotalSeconds < seconds)
        {
            long t0 = Stopwatch.GetTimestamp();
            var cpu0 = _cpuTime ? Environment.CpuUsage.TotalTime : default;
            a();
            double s = _cpuTime ? (Environment.CpuUsage.TotalTime - cpu0).TotalSeconds : Stopwatch.GetElapsedTime(t0).TotalSeconds;
            best = Math.Min(best, s);
            runs++;
        }
        return best;
    }

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static int ArgInt(string[] args, string name, int def) => Arg(args, name) is { } s ? int.Parse(s) : def;
}
