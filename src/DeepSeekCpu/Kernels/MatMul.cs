using System.Numerics.Tensors;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// The one entry for linear layers: y[n, rows] = x[n, cols] · Wᵀ for any weight format.
/// n = 1 is decoding (matrix-vector, memory-bound); n > 1 is prompt processing (matrix-matrix).
/// Rows are split across the worker pool; each weight row is read once per call.
/// </summary>
public static unsafe class MatMul
{
    public static void Multiply(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int n)
    {
        if (x.Length < (long)n * w.Cols) throw new ArgumentException($"{w.Name}: input has {x.Length} values, expected {n} x {w.Cols}");
        if (y.Length < (long)n * w.Rows) throw new ArgumentException($"{w.Name}: output has {y.Length} values, expected {n} x {w.Rows}");
        fixed (float* px = x, py = y)
        {
            var job = Job.Rent();
            job.W = w; job.X = px; job.Y = py; job.N = n;
            WorkerPool.Shared.Run(job, w.Rows, grain: 16);
            job.W = null!;
        }
    }

    /// <summary>Reusable job object so a call allocates nothing.</summary>
    private sealed class Job : IRangeJob
    {
        [ThreadStatic] private static Job? _cached;
        [ThreadStatic] private static float[]? _rowScratch;
        public WeightMatrix W = null!;
        public float* X, Y;
        public int N;

        public static Job Rent() => _cached ??= new Job();

        public void Run(int start, int end)
        {
            var w = W;
            int cols = w.Cols;
            if (w.Type == DType.F32 && w.BlockScales == null)
            {
                for (int r = start; r < end; r++)
                {
                    var row = new ReadOnlySpan<float>(w.Row(r), cols);
                    for (int t = 0; t < N; t++) Y[(long)t * w.Rows + r] = TensorPrimitives.Dot(row, new ReadOnlySpan<float>(X + (long)t * cols, cols));
                }
                return;
            }
            var scratch = _rowScratch is { } s && s.Length >= cols ? s : (_rowScratch = new float[cols]);
            var buf = scratch.AsSpan(0, cols);
            for (int r = start; r < end; r++)
            {
                Dequantize.RowOf(w, r, buf);
                for (int t = 0; t < N; t++) Y[(long)t * w.Rows + r] = TensorPrimitives.Dot(buf, new ReadOnlySpan<float>(X + (long)t * cols, cols));
            }
        }
    }
}
