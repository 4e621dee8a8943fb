using DeepSeekCpu.Kernels;
using DeepSeekCpu.Kernels.Repack;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// The MoE prefill's fused gate/up GEMM (<see cref="ExpertGemm.Run(ExpertBatch)"/>): on every path this machine
/// runs, each MLP's hidden rows equal, bit for bit, its two plain products over its gathered rows
/// (<see cref="MatMul.Multiply(WeightMatrix, ReadOnlySpan{float}, Span{float}, int, KernelPath, int)"/>: where a
/// matrix has an interleaved copy, the GEMM takes whole token steps and the GEMV the rest, in the batch as alone) followed by
/// <see cref="Ops.SwiGlu"/>, and stay within the activations' quantization error of silu(x·W1ᵀ)·(x·W3ᵀ) in double
/// over the dequantized weights. The batch mixes experts that take the fused int8 GEMM (many rows), experts that stay on the
/// matrix-vector kernels (few rows), an expert nobody chose and a "shared expert" over every row.
/// </summary>
public class ExpertGemmTests
{
    public static TheoryData<DType> Formats() => new(DType.Q4_0, DType.Q8_0, DType.Q4_K, DType.Q6_K);

    /// <summary>Each format from its stored rows, and Q4_0/Q8_0/Q4_K also from the interleaved copy (which Q8_0's GEMM reads in place, and Q4_0's and Q4_K's int8 GEMM as lane tiles).</summary>
    public static TheoryData<DType, bool> FormatsAndLayouts() =>
        new() { { DType.Q4_0, false }, { DType.Q8_0, false }, { DType.Q4_K, false }, { DType.Q6_K, false }, { DType.Q4_0, true }, { DType.Q8_0, true }, { DType.Q4_K, true } };

    [Theory]
    [MemberData(nameof(FormatsAndLayouts))]
    public void Fused_gate_up_equals_two_products_then_SwiGlu(DType t, bool interleaved)
    {
        int n = 45, cols = t.BlockSize() == 256 ? 768 : 544, inter = 67;   // a partial row block and slice
        int[][] chosen =
        [
            Enumerable.Range(0, 37).Select(i => (i * 7) % n).ToArray(),   // many rows, out of order: fused
            [3, 40, 9],                                                   // few: matrix-vector kernels
            [],                                                           // chosen by nobody
            Enumerable.Range(0, 12).Select(i => n - 1 - 3 * i).ToArray(),
            [8],                                                          // one row, read in place
        ];
        var x = Pinned(TestData.Gaussian(n * cols, 5));
        var experts = new List<(WeightMatrix W1, WeightMatrix W3, int[] Rows)>();
        for (int e = 0; e < chosen.Length; e++)
            experts.Add((TestData.Matrix(t, TestData.Gaussian(inter * cols, 100 + e, 0.05f), inter, cols),
                         TestData.Matrix(t, TestData.Gaussian(inter * cols, 200 + e, 0.05f), inter, cols), chosen[e]));
        experts.Add((TestData.Matrix(t, TestData.Gaussian(inter * cols, 300, 0.05f), inter, cols),
                     TestData.Matrix(t, TestData.Gaussian(inter * cols, 301, 0.05f), inter, cols), null!));   // all rows
        if (interleaved)
            foreach (var (w1, w3, _) in experts) Assert.True(Interleave.Attach(w1, KernelPath.Scalar) > 0 && Interleave.Attach(w3, KernelPath.Scalar) > 0);
        try
        {
            foreach (var path in KernelInfo.Available)
            {
                var b = new ExpertBatch();
                var hs = new List<float[]>();
                var kept = new List<object>();   // u and the row lists: pinned and referenced until the batch has run, as the batch asks
                foreach (var (w1, w3, rows) in experts)
                {
                    int m = rows?.Length ?? n;
                    var h = Pinned(new float[Math.Max(1, m * inter)]);
                    var u = Pinned(new float[Math.Max(1, m * inter)]);
                    var r = Pinned(rows ?? []);
                    b.Add(w1, w3, x, r, m, h, u);
                    hs.Add(h); kept.Add(u); kept.Add(r);
                }
                // a compacting collection with garbage around them between Add and Run (another test class's, say)
                for (int i = 0; i < 50; i++) GC.KeepAlive(new byte[1 << 12]);
                GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
                ExpertGemm.Run(b, path);
                b.Clear();
                GC.KeepAlive(kept);

                for (int e = 0; e < experts.Count; e++)
                {
                    var (w1, w3, rows) = experts[e];
                    int m = rows?.Length ?? n;
                    if (m == 0) continue;
                    var xg = new float[m * cols];
                    for (int i = 0; i < m; i++) x.AsSpan((rows?[i] ?? i) * cols, cols).CopyTo(xg.AsSpan(i * cols));
                    var g = new float[m * inter];
                    var u = new float[m * inter];
                    MatMul.Multiply(w1, xg, g, m, path);
                    MatMul.Multiply(w3, xg, u, m, path);
                    Ops.SwiGlu(g, u);
                    for (int i = 0; i < m * inter; i++)
                        Assert.True(g[i] == hs[e][i], $"{t} (interleaved: {interleaved}) {path} expert {e} ({m} rows) value {i}: fused {hs[e][i]} vs unfused {g[i]}");

                    // the float reference: silu(x W1ᵀ) · (x W3ᵀ) in double
                    var rg = TestData.ReferenceMatMul(w1, xg, m);
                    var ru = TestData.ReferenceMatMul(w3, xg, m);
                    double sq = 0, worst = 0;
                    for (int i = 0; i < m * inter; i++)
                    {
                        double expect = rg[i] / (1 + Math.Exp(-rg[i])) * ru[i];
                        sq += expect * expect;
                        worst = Math.Max(worst, Math.Abs(expect - hs[e][i]));
                    }
                    double rms = Math.Sqrt(sq / (m * inter));
                    // activations are quantized to 8 bits (one scale per 32, or per 256 for the K-quants, outliers
                    // included), so single values move by up to about a fifth of the rms; a wrong row, expert or
                    // missing silu moves them by the whole rms
                    Assert.True(worst <= 0.3 * rms, $"{t} {path} expert {e}: largest error {worst} against the double reference (rms {rms})");
                }
            }
        }
        finally
        {
            foreach (var (w1, w3, _) in experts) { w1.Dispose(); w3.Dispose(); }
        }
    }

    /// <summary>
    /// The MoE prefill's down products (plain entries of an <see cref="ExpertBatch"/>, y = h·W2ᵀ over each expert's own
    /// hidden rows), all in one batch: each equals, bit for bit, its own <see cref="MatMul.Multiply(WeightMatrix,
    /// ReadOnlySpan{float}, Span{float}, int, KernelPath, int)"/> (with its GEMV tail where the matrix has an interleaved copy), and stays within the activations' quantization error of the double
    /// product over the dequantized weights. Token counts cover whole two-panel steps (64), a one-panel tail (48, 37; with an interleaved copy, 32 and the GEMV's tail),
    /// fewer rows than the GEMM takes (3) and none; the last product is twice as wide (the shared experts' down
    /// product beside the routed ones').
    /// </summary>
    [Theory]
    [MemberData(nameof(FormatsAndLayouts))]
    public void Down_products_equal_plain_products(DType t, bool interleaved)
    {
        int c0 = t.BlockSize() == 256 ? 512 : 352, rows = 131;   // a partial row block
        int[] tokens = [64, 48, 3, 0, 37, 45], widths = [c0, c0, c0, c0, c0, 2 * c0];
        var w = tokens.Select((_, e) => TestData.Matrix(t, TestData.Gaussian(rows * widths[e], 700 + e, 0.05f), rows, widths[e])).ToArray();
        if (interleaved)
            foreach (var m in w) Assert.True(Interleave.Attach(m, KernelPath.Scalar) > 0);
        try
        {
            var xs = tokens.Select((m, e) => Pinned(TestData.Gaussian(Math.Max(1, m * widths[e]), 800 + e))).ToArray();
            foreach (var path in KernelInfo.Available)
            {
                var ys = tokens.Select(m => Pinned(new float[Math.Max(1, m * rows)])).ToArray();
                var b = new ExpertBatch();
                for (int e = 0; e < w.Length; e++) b.Add(w[e], xs[e], tokens[e], ys[e]);
                ExpertGemm.Run(b, path);
                b.Clear();
                for (int e = 0; e < w.Length; e++)
                {
                    int m = tokens[e];
                    if (m == 0) continue;
                    var expect = new float[m * rows];
                    MatMul.Multiply(w[e], xs[e], expect, m, path);
                    for (int i = 0; i < m * rows; i++)
                        Assert.True(expect[i] == ys[e][i], $"{t} (interleaved: {interleaved}) {path} expert {e} ({m} rows) value {i}: batch {ys[e][i]} vs alone {expect[i]}");
                    var reference = TestData.ReferenceMatMul(w[e], xs[e], m);
                    double sq = 0, worst = 0;
                    for (int i = 0; i < m * rows; i++) { sq += reference[i] * reference[i]; worst = Math.Max(worst, Math.Abs(reference[i] - ys[e][i])); }
                    // 8-bit activations move single values by a small fraction of the rms; a wrong row or token by all of it
                    Assert.True(worst <= 0.2 * Math.Sqrt(sq / (m * rows)), $"{t} {path} expert {e}: largest error {worst} against the double reference");
                }
            }
        }
        finally
        {
            foreach (var m in w) m.Dispose();
        }
    }

    /// <summary>
    /// Entries whose formats take different activation packings (Q4_K against Q8_K activations, and Q6_K on AVX-512;
    /// Q4_0 against Q8_0 ones) in one batch, Q4_K first and then Q4_0 first: the fused GEMM keeps those of the first
    /// entry's packing and leaves the others to the unfused batch, so each still equals its own product bit for bit. Q4_K
    /// and Q6_K fused share one packing (Q4_K's sums per 32 and Q6_K's per 16 side by side).
    /// </summary>
    [Fact]
    public void Entries_of_different_activation_packings_each_equal_their_own_product()
    {
        const int cols = 512, rows = 67, n = 40;
        var types = new[] { DType.Q4_K, DType.Q4_0, DType.Q6_K, DType.Q4_0 };
        var w = types.Select((t, e) => TestData.Matrix(t, TestData.Gaussian(rows * cols, 1000 + e, 0.05f), rows, cols)).ToArray();
        try
        {
            var x = Pinned(TestData.Gaussian(n * cols, 1010));
            foreach (var path in KernelInfo.Available)
            foreach (var order in new[] { new[] { 0, 1, 2, 3 }, new[] { 1, 0, 3, 2 } })
            {
                var ys = order.Select(_ => Pinned(new float[n * rows])).ToArray();
                var b = new ExpertBatch();
                for (int i = 0; i < order.Length; i++) b.Add(w[order[i]], x, n, ys[i]);
                ExpertGemm.Run(b, path);
                b.Clear();
                for (int i = 0; i < order.Length; i++)
                {
                    var expect = new float[n * rows];
                    MatMul.Multiply(w[order[i]], x, expect, n, path);
                    for (int j = 0; j < expect.Length; j++)
                        Assert.True(expect[j] == ys[i][j], $"{path} entry {i} ({types[order[i]]}) value {j}: batch {ys[i][j]} vs alone {expect[j]}");
                }
            }
        }
        finally
        {
            foreach (var m in w) m.Dispose();
        }
    }

    /// <summary>
    /// The same batch from several threads at once, beside plain products of the same matrices and of others on more
    /// threads, while a thread churns the GC (xUnit runs test classes in parallel, so the kernels always run so): every
    /// result still equals, bit for bit, the one computed alone beforehand. Kernel state that is shared between calling
    /// threads, or scratch freed or reused while the pool still reads it, shows here as wrong values or a crash.
    /// </summary>
    [Theory]
    [MemberData(nameof(Formats))]
    public void Concurrent_batches_and_products_match_the_values_computed_alone(DType t)
    {
        int n = 40, cols = t.BlockSize() == 256 ? 512 : 288, inter = 70;
        int[][] chosen = [Enumerable.Range(0, 33).Select(i => (i * 5) % n).ToArray(), [1, 7, 30], Enumerable.Range(0, 17).Select(i => 2 * i).ToArray()];
        var x = Pinned(TestData.Gaussian(n * cols, 11));
        var w1 = chosen.Select((_, e) => TestData.Matrix(t, TestData.Gaussian(inter * cols, 400 + e, 0.05f), inter, cols)).ToArray();
        var w3 = chosen.Select((_, e) => TestData.Matrix(t, TestData.Gaussian(inter * cols, 500 + e, 0.05f), inter, cols)).ToArray();
        var other = TestData.Matrix(t, TestData.Gaussian(2 * inter * cols, 600, 0.05f), 2 * inter, cols);
        try
        {
            foreach (var path in KernelInfo.Available)
            {
                // alone: each expert's h (the fused or unfused batch), w1's product over the first n rows, other's
                var expectH = Hidden(w1, w3, x, chosen, inter, path);
                var expectG = new float[n * inter];
                var expectO = new float[n * 2 * inter];
                MatMul.Multiply(w1[0], x, expectG, n, path);
                MatMul.Multiply(other, x, expectO, n, path);

                var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
                var threads = new List<Thread>();
                void Start(Action<int> body)
                {
                    var th = new Thread(() =>
                    {
                        try { for (int it = 0; it < 6 && failures.IsEmpty; it++) body(it); }
                        catch (Exception ex) { failures.Enqueue(ex.ToString()); }
                    });
                    threads.Add(th);
                    th.Start();
                }
                for (int k = 0; k < 2; k++)
                    Start(it =>
                    {
                        var h = Hidden(w1, w3, x, chosen, inter, path);
                        for (int e = 0; e < h.Length; e++)
                            if (!h[e].AsSpan().SequenceEqual(expectH[e])) failures.Enqueue($"{t} {path} iteration {it}: expert {e}'s fused rows differ");
                    });
                Start(it =>
                {
                    var g = new float[n * inter];
                    MatMul.Multiply(w1[0], x, g, n, path);
                    if (!g.AsSpan().SequenceEqual(expectG)) failures.Enqueue($"{t} {path} iteration {it}: w1's product differs");
                });
                Start(it =>
                {
                    var o = new float[n * 2 * inter];
                    MatMul.Multiply(other, x, o, n, path);
                    if (!o.AsSpan().SequenceEqual(expectO)) failures.Enqueue($"{t} {path} iteration {it}: another matrix's product differs");
                });
                Start(_ =>
                {
                    for (int i = 0; i < 20; i++) GC.KeepAlive(GC.AllocateUninitializedArray<byte>(1 << 16, pinned: i % 2 == 0));
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                });
                foreach (var th in threads) th.Join();
                Assert.True(failures.IsEmpty, string.Join("\n", failures.Take(5)));
            }
        }
        finally
        {
            foreach (var w in w1.Concat(w3).Append(other)) w.Dispose();
        }
    }

    /// <summary>Each expert's h over its rows of x, all of them in one <see cref="ExpertBatch"/>.</summary>
    private static float[][] Hidden(WeightMatrix[] w1, WeightMatrix[] w3, float[] x, int[][] rows, int inter, KernelPath path)
    {
        var b = new ExpertBatch();
        var hs = new float[rows.Length][];
        var kept = new List<object>();   // u and the row lists: pinned (the GC churn beside would move them) and referenced until the batch has run
        for (int e = 0; e < rows.Length; e++)
        {
            int m = rows[e].Length;
            hs[e] = Pinned(new float[m * inter]);
            var u = Pinned(new float[m * inter]);
            var r = Pinned(rows[e]);
            b.Add(w1[e], w3[e], x, r, m, hs[e], u);
            kept.Add(u); kept.Add(r);
        }
        ExpertGemm.Run(b, path);
        b.Clear();
        GC.KeepAlive(kept);
        return hs;
    }

    private static T[] Pinned<T>(T[] a) where T : unmanaged
    {
        var p = GC.AllocateArray<T>(a.Length, pinned: true);
        a.CopyTo(p, 0);
        return p;
    }
}
