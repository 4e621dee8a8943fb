using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// The MoE prefill's fused gate/up GEMM (<see cref="ExpertGemm.SwiGlu(ExpertBatch)"/>): on every path this machine
/// runs, each MLP's hidden rows equal, bit for bit, its two plain products over its gathered rows
/// (<see cref="MatMul.Multiply(WeightMatrix, ReadOnlySpan{float}, Span{float}, int)"/>) followed by
/// <see cref="Ops.SwiGlu"/>, and stay within the activations' quantization error of silu(x·W1ᵀ)·(x·W3ᵀ) in double
/// over the dequantized weights. The batch mixes experts that take the fused int8 GEMM (many rows), experts that stay on the
/// matrix-vector kernels (few rows), an expert nobody chose and a "shared expert" over every row.
/// </summary>
public class ExpertGemmTests
{
    public static TheoryData<DType> Formats() => new(DType.Q4_0, DType.Q8_0, DType.Q4_K, DType.Q6_K);

    [Theory]
    [MemberData(nameof(Formats))]
    public void Fused_gate_up_equals_two_products_then_SwiGlu(DType t)
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
        try
        {
            foreach (var path in KernelInfo.Available)
            {
                var b = new ExpertBatch();
                var hs = new List<float[]>();
                var rowLists = new List<int[]>();
                foreach (var (w1, w3, rows) in experts)
                {
                    int m = rows?.Length ?? n;
                    var h = Pinned(new float[Math.Max(1, m * inter)]);
                    var u = Pinned(new float[Math.Max(1, m * inter)]);
                    var r = rows == null ? [] : Pinned(rows);
                    b.Add(w1, w3, x, r, m, h, u);
                    hs.Add(h); rowLists.Add(r);
                }
                ExpertGemm.SwiGlu(b, path);

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
                        Assert.True(g[i] == hs[e][i], $"{t} {path} expert {e} ({m} rows) value {i}: fused {hs[e][i]} vs unfused {g[i]}");

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

    private static T[] Pinned<T>(T[] a) where T : unmanaged
    {
        var p = GC.AllocateArray<T>(a.Length, pinned: true);
        a.CopyTo(p, 0);
        return p;
    }
}
