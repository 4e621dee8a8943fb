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
    /// Q4_K where a micro-kernel multiplies it against Q8_K activations (<see cref="IInt8Micro.UsesQ8K"/>) is
    /// specified by <see cref="Q4_KQ8_K"/> instead.
    /// </summary>
    public static void Int8(WeightMatrix w, ReadOnlySpan<float> x, Span<double> y, int n)
    {
        int cols = w.Cols, nb = cols / 32, perBlock = Int8Tiles.ScalesPerBlock(w.Type), size = 32 / perBlock;
        var q = new byte[cols];
        var high = new byte[cols];
        var d = new float[nb * perBlock];
        var m = new float[nb * perBlock];
        var (xq, xd) = QuantizeTokens(x, n, cols, q8k: false);
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

    /// <summary>
    /// The Q4_K × Q8_K product of <see cref="GemmInt8{TMicro}"/>, written from the formats (ggml-quants.c:
    /// block_q4_K with get_scale_min_k4 and dequantize_row_q4_K's element order; quantize_row_q8_K_ref through
    /// <see cref="ActQ8.QuantizeQ8_KScalar"/>), as ggml's vec_dot_q4_K_q8_K sums it: per super-block,
    /// isum = Σ_j sc_j·Σ q·q_x and imin = Σ_j m_j·Σ q_x over the 8 sub-blocks j of 32 in int32, then
    /// y[t, r] = Σ_super-blocks d_x·(d·isum − dmin·imin) in float64.
    /// </summary>
    /// <remarks>Q5_K (block_q5_K, dequantize_row_q5_K; ggml's vec_dot_q5_K_q8_K) the same way, each q with its fifth bit
    /// (<see cref="KQuant.K4Quant"/>, the accessor <see cref="Dequantize"/> reads).</remarks>
    public static void Q4_KQ8_K(WeightMatrix w, ReadOnlySpan<float> x, Span<double> y, int n)
    {
        if (w.Type is not (DType.Q4_K or DType.Q5_K)) throw new ArgumentException($"{w.Name}: expected Q4_K or Q5_K, got {w.Type}");
        bool five = w.Type == DType.Q5_K;
        int cols = w.Cols, ns = cols / 256;
        var (xq, xd) = QuantizeTokens(x, n, cols, q8k: true);
        var q = new int[256];
        for (int r = 0; r < w.Rows; r++)
        for (int t = 0; t < n; t++)
        {
            double s = 0;
            for (int sb = 0; sb < ns; sb++)
            {
                // the two layouts share d, dmin and the 12 scale bytes; Q5_K keeps qh[32] before qs
                var blk = (BlockQ4_K*)(w.Row(r) + sb * w.Type.BlockBytes());
                byte* qs = five ? ((BlockQ5_K*)blk)->Qs : blk->Qs, qh = five ? ((BlockQ5_K*)blk)->Qh : null;
                for (int j = 0; j < 8; j++)
                for (int l = 0; l < 32; l++) q[32 * j + l] = KQuant.K4Quant(qs, qh, j, l);
                int isum = 0, imin = 0;
                for (int j = 0; j < 8; j++)
                {
                    KQuant.ScaleMin(j, blk->Scales, out int sc, out int mn);
                    int dot = 0, xs = 0;
                    for (int k = 32 * j; k < 32 * j + 32; k++)
                    {
                        int qx = xq[t * cols + 256 * sb + k];
                        dot += q[k] * qx;
                        xs += qx;
                    }
                    isum += sc * dot;
                    imin += mn * xs;
                }
                double dx = xd[t * ns + sb];
                s += dx * ((double)HalfBits.ToFloat(blk->D) * isum - (double)HalfBits.ToFloat(blk->DMin) * imin);
            }
            y[t * w.Rows + r] = s;
        }
    }

    /// <summary>The product of a K-quant matrix against Q8_K activations as the int8 GEMM forms it where a micro-kernel
    /// takes that path (<see cref="IInt8Micro.UsesQ8K"/>): <see cref="Q4_KQ8_K"/> (Q4_K, Q5_K) or <see cref="Q6_KQ8_K"/>.</summary>
    public static void KQ8_K(WeightMatrix w, ReadOnlySpan<float> x, Span<double> y, int n)
    {
        if (w.Type == DType.Q6_K) Q6_KQ8_K(w, x, y, n);
        else Q4_KQ8_K(w, x, y, n);
    }

    /// <summary>
    /// The Q6_K × Q8_K product, written from the format (ggml-quants.c: block_q6_K and dequantize_row_q6_K's element
    /// order through <see cref="KQuant.Q6Quant"/>; quantize_row_q8_K_ref through <see cref="ActQ8.QuantizeQ8_KScalar"/>), as ggml's vec_dot_q6_K_q8_K sums
    /// it: per super-block isum = Σ_j sc_j·Σ (q − 32)·q_x over the 16 sub-blocks j of 16 in int32, then
    /// y[t, r] = Σ_super-blocks d_x·d·isum in float64.
    /// </summary>
    public static void Q6_KQ8_K(WeightMatrix w, ReadOnlySpan<float> x, Span<double> y, int n)
    {
        if (w.Type != DType.Q6_K) throw new ArgumentException($"{w.Name}: expected Q6_K, got {w.Type}");
        int cols = w.Cols, ns = cols / 256;
        var (xq, xd) = QuantizeTokens(x, n, cols, q8k: true);
        var q = new int[256];
        for (int r = 0; r < w.Rows; r++)
        for (int t = 0; t < n; t++)
        {
            double s = 0;
            for (int sb = 0; sb < ns; sb++)
            {
                var blk = (BlockQ6_K*)w.Row(r) + sb;
                for (int k = 0; k < 256; k++) q[k] = KQuant.Q6Quant(blk, k);   // q − 32, as Dequantize reads it
                int isum = 0;
                for (int j = 0; j < 16; j++)
                {
                    int dot = 0;
                    for (int k = 16 * j; k < 16 * j + 16; k++) dot += q[k] * xq[t * cols + 256 * sb + k];
                    isum += blk->Scales[j] * dot;
                }
                s += xd[t * ns + sb] * ((double)HalfBits.ToFloat(blk->D) * isum);
            }
            y[t * w.Rows + r] = s;
        }
    }

    /// <summary>Each token of x[n, cols] quantized by the scalar Q8_0 (scale per 32) or Q8_K (scale per 256) specification:
    /// quants [n, cols] and scales [n, cols / 32 or cols / 256].</summary>
    private static (sbyte[] Q, float[] D) QuantizeTokens(ReadOnlySpan<float> x, int n, int cols, bool q8k)
    {
        int ns = cols / (q8k ? 256 : 32);
        var xq = new sbyte[n * cols];
        var xd = new float[n * ns];
        var actMem = new byte[ActQ8.BytesFor(cols) + 64];
        fixed (byte* am = actMem)
        fixed (float* px = x)
        {
            var a = ActQ8.At((byte*)(((nint)am + 63) & ~63), cols);
            a.Nib = null;
            for (int t = 0; t < n; t++)
            {
                if (q8k) ActQ8.QuantizeQ8_KScalar(px + (long)t * cols, &a);
                else ActQ8.QuantizeQ8_0Scalar(px + (long)t * cols, &a);
                new ReadOnlySpan<sbyte>(a.Q, cols).CopyTo(xq.AsSpan(t * cols));
                new ReadOnlySpan<float>(a.D, ns).CopyTo(xd.AsSpan(t * ns));
            }
        }
        return (xq, xd);
    }
}
