using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// One matrix per attention head applied to that head's slice of every token: y[t, h, :rows] = W_h · x[t, h, :cols]
/// (MLA's absorbed W_ukᵀ_h and W_uv_h). The heads' products run as one <see cref="MatMulBatch"/> (one pool dispatch
/// while they are matrix-vector products) over head-major copies of the slices, a group of tokens at a time so that
/// the copies stay small.
/// </summary>
internal static unsafe class MatMulHeads
{
    /// <summary>Tokens per group; also what decides GEMV or GEMM for the per-head products.</summary>
    public const int GroupTokens = 16;

    [ThreadStatic] private static byte[]? _xs, _ys;
    [ThreadStatic] private static MatMulBatch? _batch;

    /// <summary>
    /// x is [n, heads, xStride] (head h of token t reads its first cols values), y is [n, heads, yStride] (head h of
    /// token t gets rows values); every W_h is [rows, cols].
    /// </summary>
    public static void Multiply(WeightMatrix[] w, ReadOnlySpan<float> x, int xStride, Span<float> y, int yStride, int n)
    {
        int H = w.Length;
        if (n <= 0 || H == 0) return;
        int rows = w[0].Rows, cols = w[0].Cols;
        foreach (var wh in w)
            if (wh.Rows != rows || wh.Cols != cols) throw new ArgumentException($"{wh.Name}: per-head matrices differ in shape");
        if (cols > xStride || rows > yStride || x.Length < (long)n * H * xStride - (xStride - cols) || y.Length < (long)n * H * yStride - (yStride - rows))
            throw new ArgumentException($"{w[0].Name}: per-head input or output is smaller than {n} x {H} heads");
        int G = Math.Min(GroupTokens, n);
        float* xs = (float*)Scratch.Get(ref _xs, (long)H * G * cols * sizeof(float));   // [heads, T, cols]
        float* ys = (float*)Scratch.Get(ref _ys, (long)H * G * rows * sizeof(float));   // [heads, T, rows]
        var b = _batch ??= new MatMulBatch();
        for (int t0 = 0; t0 < n; t0 += GroupTokens)
        {
            int T = Math.Min(GroupTokens, n - t0);
            for (int t = 0; t < T; t++)
                for (int h = 0; h < H; h++)
                    x.Slice(((t0 + t) * H + h) * xStride, cols).CopyTo(new Span<float>(xs + (h * T + t) * cols, cols));
            b.Clear(T);
            for (int h = 0; h < H; h++) b.Add(w[h], xs + h * T * cols, ys + h * T * rows);
            MatMul.Multiply(b);
            b.Clear(0);
            for (int t = 0; t < T; t++)
                for (int h = 0; h < H; h++)
                    new ReadOnlySpan<float>(ys + (h * T + t) * rows, rows).CopyTo(y.Slice(((t0 + t) * H + h) * yStride, rows));
        }
    }
}
