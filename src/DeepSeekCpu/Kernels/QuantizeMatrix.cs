using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>Whole matrices through the reference quantizer (Reference/Quantize.cs), rows in parallel on the worker pool.</summary>
internal static unsafe partial class Quantize
{
    /// <summary>
    /// A quantized copy of <paramref name="src"/> (any readable type, FP8 block scales applied) in native memory
    /// (64-byte aligned). The returned matrix owns the memory through <see cref="WeightMatrix.Owner"/>: it is freed
    /// when the matrix is disposed or collected. Rows are quantized in parallel on the shared worker pool.
    /// </summary>
    public static WeightMatrix Matrix(WeightMatrix src, DType type)
    {
        if (!CanQuantizeTo(type)) throw new NotSupportedException($"{src.Name}: cannot quantize to {type}");
        if (src.Cols % type.BlockSize() != 0)
            throw new ArgumentException($"{src.Name}: {src.Cols} columns is not a multiple of the {type} block size {type.BlockSize()}");
        long rowBytes = type.ByteCount(src.Cols);
        var buffer = new NativeBuffer(rowBytes * src.Rows);
        var job = new MatrixJob { Src = src, Type = type, Dst = buffer.Pointer, RowBytes = rowBytes };
        WorkerPool.Shared.Run(job, src.Rows, grain: 4);
        return new WeightMatrix(src.Name, type, src.Rows, src.Cols, buffer.Pointer, null, buffer);
    }

    /// <summary>
    /// Quantizes output rows [<paramref name="first"/>, first + count) to <paramref name="type"/> into
    /// <paramref name="dst"/> (count rows of type.ByteCount(cols) bytes), output row r taken from source row
    /// <paramref name="sourceRow"/>(r) (identity when null; a GGUF writer's row permutation otherwise). Rows are
    /// quantized in parallel on the shared worker pool (the K-quant scale searches are the slow part of quantize).
    /// </summary>
    public static void RowsInto(WeightMatrix src, DType type, int first, int count, byte* dst, Func<int, int>? sourceRow = null)
    {
        if (!CanQuantizeTo(type)) throw new NotSupportedException($"{src.Name}: cannot quantize to {type}");
        var job = new MatrixJob { Src = src, Type = type, Dst = dst, RowBytes = type.ByteCount(src.Cols), First = first, SourceRow = sourceRow };
        WorkerPool.Shared.Run(job, count, grain: 4);
    }

    private sealed class MatrixJob : IRangeJob
    {
        [ThreadStatic] private static float[]? _row;
        public WeightMatrix Src = null!;
        public DType Type;
        public byte* Dst;                  // row i of the output range at Dst + i * RowBytes
        public long RowBytes;
        public int First;                  // output row of Dst's first row
        public Func<int, int>? SourceRow;

        public void Run(int start, int end)
        {
            int cols = Src.Cols;
            var row = _row is { } a && a.Length >= cols ? a : (_row = new float[cols]);
            for (int i = start; i < end; i++)
            {
                int r = First + i;
                Dequantize.RowOf(Src, SourceRow?.Invoke(r) ?? r, row.AsSpan(0, cols));
                Row(Type, row.AsSpan(0, cols), new Span<byte>(Dst + i * RowBytes, checked((int)RowBytes)));
            }
        }
    }
}
