using System.Diagnostics;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Bench;

/// <summary>
/// `bodies`: each dot-product body alone, single-threaded, on 64 rows of 1536 that stay in L2: the compute cost per
/// weight (ns per 1000 weights), i.e. how far a body is from keeping up with memory. Best of many repetitions.
/// </summary>
internal static unsafe class Bodies
{
    public static int Run(string[] args)
    {
        const int rows = 64, cols = 1536;
        Console.WriteLine($"kernel path {KernelInfo.ActivePath}; ns per 1000 weights, single thread, L2-resident ({rows}x{cols})");
        // `bodies TYPE...` (e.g. `bodies IQ4_NL MXFP4`) times only those formats
        var types = args.Length > 0 ? args.Select(a => Enum.Parse<DType>(a, ignoreCase: true)).ToArray()
            : [DType.Q4_0, DType.Q8_0, DType.Q4_1, DType.Q5_0, DType.Q4_K, DType.Q5_K, DType.Q6_K, DType.BF16, DType.F8_E4M3];
        foreach (var type in types)
        {
            using var w = BenchWeights.Make(type, rows, cols);
            var x = BenchWeights.Activations(cols);
            var mem = new byte[ActQ8.BytesFor(cols) + 64];
            var line = $"{type,-8}";
            fixed (byte* m = mem)
            fixed (float* px = x)
            {
                var a = ActQ8.At((byte*)(((nint)m + 63) & ~63), cols);
                if (type.IsQuantized()) ActQ8.QuantizeFor(type, px, &a);
                foreach (var path in KernelInfo.Available)
                {
                    double best = double.MaxValue;
                    float sink = 0;
                    var q = type.IsQuantized() ? Gemv.QuantDot(type, path) : null;
                    var f = type.IsQuantized() ? null : Gemv.FloatDotFor(type, path);
                    float* scales = w.BlockScales;
                    for (int rep = 0; rep < 200; rep++)
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        if (q != null) for (int r = 0; r < rows; r++) sink += q(w.Row(r), &a);
                        else for (int r = 0; r < rows; r++) sink += f(w.Row(r), px, cols, scales);
                        best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalNanoseconds);
                    }
                    line += $"  {KernelInfo.Name(path)} {best / (rows * cols / 1000.0),6:F1}";
                    if (float.IsNaN(sink)) line += "!";   // keeps the sums observable (not optimized away)
                }
            }
            Console.WriteLine(line);
            if (Kernels.Repack.Interleave.Supports(type)) Console.WriteLine(Interleaved(w, x));
        }
        return 0;
    }

    /// <summary>The same rows interleaved (Kernels/Repack/Interleave), 16 per call of the group body.</summary>
    private static string Interleaved(WeightMatrix w, float[] x)
    {
        int rows = w.Rows, cols = w.Cols;
        var packed = new byte[Kernels.Repack.Interleave.Groups(rows) * Kernels.Repack.Interleave.GroupBytes(w.Type, cols) + 64];
        var mem = new byte[ActQ8.BytesFor(cols) + 64];
        var line = $"{w.Type + " x16",-8}";
        float* y = stackalloc float[16];
        fixed (byte* pk = packed, m = mem)
        fixed (float* px = x)
        {
            byte* p = (byte*)(((nint)pk + 63) & ~63);
            Kernels.Repack.Interleave.Pack(w, p);
            var a = ActQ8.At((byte*)(((nint)m + 63) & ~63), cols);
            ActQ8.QuantizeFor(w.Type, px, &a);
            long groupBytes = Kernels.Repack.Interleave.GroupBytes(w.Type, cols);
            foreach (var path in KernelInfo.Available)
            {
                var g = Kernels.Repack.Interleave.GroupDot(w.Type, path);
                if (g == null) { line += $"  {KernelInfo.Name(path)}      -"; continue; }
                double best = double.MaxValue;
                float sink = 0;
                for (int rep = 0; rep < 200; rep++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    for (int r = 0; r < rows; r += 16) { g(p + r / 16 * groupBytes, &a, y); sink += y[0]; }
                    best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalNanoseconds);
                }
                line += $"  {KernelInfo.Name(path)} {best / (rows * cols / 1000.0),6:F1}";
                if (float.IsNaN(sink)) line += "!";
            }
        }
        return line;
    }
}
