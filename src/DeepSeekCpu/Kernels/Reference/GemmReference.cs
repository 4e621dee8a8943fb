using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.Reference;

/// <summary>
/// Naive matrix-matrix products, the specifications the tiled GEMMs are tested against (as llm.c keeps
/// matmul_forward_naive beside matmul_forward): one output at a time, no tiling, packing or threads.
/// </summary>
internal static unsafe class GemmReference
{
    /// <summary>
    /// y[t, r] = Σ_k deq(W)[r, k] · x[t, k], weights dequantized by <see cref="Dequantize"/> and each output summed in
    /// float32 in k order: the specification of <see cref="Gemm"/>.
    /// </summary>
    public static void Float(WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int n)
    {
        var row = new float[w.Cols];
        for (int r = 0; r < w.Rows; r++)
        {
            Dequantize.RowOf(w, r, row);
            for (int t = 0; t < n; t++)
            {
                var xt = x.Slice(t * w.Cols, w.Cols);
                float s = 0;
                for (int k = 0; k < w.Cols; k++) s += row[k] * xt[k];
                y[t * w.Rows + r] = s;
            }
        }
    }

    /// <summary>
    /// The integer product of <see cref="GemmInt8{TMicro}"/>: every token quantized by
    /// <see cref="ActQ8.QuantizeQ8_0Scalar"/> (q_x, d_x per 32), every weight block as w = d·q + m with q in bytes
    /// (<see cref="Int8Tiles.Unpack"/>, itself equal to <see cref="Dequantize"/>), and
    /// y[t, r] = Σ_groups d_w·d_x·Σ q·q_x + m_w·d_x·Σ q_x, with the inner sums in int32 and the outer in float64.
    /// A group is a 32-element block, or 16 elements where the format has a scale per 16 (Q6_K).
    /// </summary>
    public static void Int8(WeightMatrix w, ReadOnlySpan<float> x, Span<double> y, int n)
    {
        int cols = w.Cols, nb = cols / 32, perBlock = Int8Tiles.ScalesPerBlock(w.Type), size = 32 / perBlock;
        var q = new byte[cols];
        var high = new byte[cols];
        var d = new float[nb * perBlock];
        var m = new float[nb * perBlock];
        var actMem = new byte[ActQ8.BytesFor(cols) + 64];
        var xq = new sbyte[n * cols];
        var xd = new float[n * nb];
        fixed (byte* am = actMem)
        fixed (float* px = x)
        {
            var a = ActQ8.At((byte*)(((nint)am + 63) & ~63), cols);
            a.Nib = null;
            for (int t = 0; t < n; t++)
            {
                ActQ8.QuantizeQ8_0Scalar(px + (long)t * cols, &a);
                new ReadOnlySpan<sbyte>(a.Q, cols).CopyTo(xq.AsSpan(t * cols));
                new ReadOnlySpan<float>(a.D, nb).CopyTo(xd.AsSpan(t * nb));
            }
        }
        fixed (byte* pq = q, ph = high)
        fixed (float* pd = d, pm = m)
        {
            for (int r = 0; r < w.Rows; r++)
            {
                // Unpack takes whole K-quant super-blocks; 32-element formats any block count.
                Int8Tiles.Unpack(w, r, 0, nb, pq, ph, pd, pm);
                for (int t = 0; t < n; t++)
                {
                    double s = 0;
                    for (int g = 0; g < nb * perBlock; g++)
                    {
                        int isum = 0, xsum = 0;
                        for (int k = g * size; k < (g + 1) * size; k++)
                        {
                            int qw = q[k] + 16 * high[k];
                            isum += qw * xq[t * cols + k];
                            xsum += xq[t * cols + k];
                        }
                        double dx = xd[t * nb + g / perBlock];
                        s += (double)d[g] * dx * isum + (double)m[g] * dx * xsum;
                    }
                    y[t * w.Rows + r] = s;
                }
            }
        }
    }
}
