using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// The public entry on every path this machine has, matrix-vector (small n) and tiled matrix-matrix (n = 13: the int8
/// GEMM; n = 37: every GEMM),
/// against a float64 product of the dequantized weights, with row/token/column counts that leave tails everywhere.
/// </summary>
public class MatMulTests
{
    public static TheoryData<DType, int, int> Shapes()
    {
        var d = new TheoryData<DType, int, int>();
        foreach (var t in new[] { DType.F32, DType.F16, DType.BF16, DType.F8_E4M3 })
        {
            d.Add(t, 67, 200);   // FP8: partial 128-column and 128-row scale blocks
            d.Add(t, 130, 136);
        }
        foreach (var t in new[] { DType.Q8_0, DType.Q4_0, DType.Q4_1, DType.Q5_0 })
        {
            d.Add(t, 67, 288);
            d.Add(t, 3, 544);    // 544 = 2·256 + 32: a partial column slice in the GEMM
        }
        foreach (var t in new[] { DType.Q8_K, DType.Q4_K, DType.Q5_K, DType.Q6_K })
        {
            d.Add(t, 67, 768);
            d.Add(t, 9, 256);
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Multiply_matches_the_float_reference_on_every_path(DType t, int rows, int cols)
    {
        using var w = TestData.Matrix(t, TestData.Gaussian(rows * cols, rows + cols, 0.05f), rows, cols);
        KernelCheck.EveryPathMultipliesLikeTheFloatReference(w, [1, 3, 13, 37], n => n);
    }

    /// <summary>
    /// A batch of products of mixed formats and shapes, some sharing one input (Q8_0 and Q4_0 share the quantized
    /// activations, Q4_K needs its own), in one dispatch: each output must match its own float64 reference, with the
    /// same budgets as single products; n = 13 takes the per-product GEMM route.
    /// </summary>
    [Fact]
    public unsafe void Batch_matches_the_float_reference_for_every_product_on_every_path()
    {
        var specs = new (DType Type, int Rows, int Cols, int Input)[]
        {
            (DType.Q8_0, 67, 288, 0), (DType.Q4_0, 33, 288, 0), (DType.Q4_K, 20, 256, 1), (DType.Q4_0, 5, 256, 1),
            (DType.F32, 17, 288, 0), (DType.BF16, 9, 64, 2), (DType.Q6_K, 40, 512, 3), (DType.Q5_0, 16, 96, 4),
        };
        int[] inputCols = [288, 256, 64, 512, 96];
        var weights = specs.Select((s, i) => TestData.Matrix(s.Type, TestData.Gaussian(s.Rows * s.Cols, 100 + i, 0.05f), s.Rows, s.Cols)).ToArray();
        try
        {
            foreach (int n in new[] { 1, 3, 13 })
            {
                var inputs = inputCols.Select((c, i) => GC.AllocateArray<float>(n * c, pinned: true)).ToArray();
                for (int i = 0; i < inputs.Length; i++) TestData.Gaussian(n * inputCols[i], 7 * n + i).CopyTo(inputs[i], 0);
                foreach (var path in KernelInfo.Available)
                {
                    var outputs = specs.Select(s => GC.AllocateArray<float>(n * s.Rows, pinned: true)).ToArray();
                    var batch = new MatMulBatch();
                    batch.Clear(n);
                    for (int i = 0; i < specs.Length; i++)
                        batch.Add(weights[i], (float*)System.Runtime.InteropServices.Marshal.UnsafeAddrOfPinnedArrayElement(inputs[specs[i].Input], 0),
                            (float*)System.Runtime.InteropServices.Marshal.UnsafeAddrOfPinnedArrayElement(outputs[i], 0));
                    MatMul.Multiply(batch, path);
                    for (int i = 0; i < specs.Length; i++)
                    {
                        var (t, rows, cols, input) = specs[i];
                        var x = inputs[input];
                        var expect = TestData.ReferenceMatMul(weights[i], x, n);
                        KernelCheck.AssertProducts(weights[i], Dequantize.Matrix(weights[i]), x, outputs[i], expect, n, path,
                            $"batch product {i} ({t}) {KernelInfo.Name(path)} n={n}");
                    }
                }
            }
        }
        finally { foreach (var w in weights) w.Dispose(); }
    }

    /// <summary>
    /// Products over different token counts in one batch (a batched decoding step's routed experts): the GEMV
    /// products share one dispatch, those with enough tokens take the GEMM, each checked against its reference.
    /// </summary>
    [Fact]
    public unsafe void Batch_with_a_token_count_per_product_matches_the_float_reference()
    {
        var specs = new (DType Type, int Rows, int Cols, int Tokens)[]
        {
            (DType.Q4_0, 40, 256, 1), (DType.Q4_0, 40, 256, 3), (DType.Q8_0, 24, 288, 13), (DType.Q4_K, 20, 256, 2), (DType.F32, 9, 64, 17),
        };
        var weights = specs.Select((s, i) => TestData.Matrix(s.Type, TestData.Gaussian(s.Rows * s.Cols, 200 + i, 0.05f), s.Rows, s.Cols)).ToArray();
        try
        {
            var inputs = specs.Select((s, i) => { var a = GC.AllocateArray<float>(s.Tokens * s.Cols, pinned: true); TestData.Gaussian(a.Length, 300 + i).CopyTo(a, 0); return a; }).ToArray();
            foreach (var path in KernelInfo.Available)
            {
                var outputs = specs.Select(s => GC.AllocateArray<float>(s.Tokens * s.Rows, pinned: true)).ToArray();
                var batch = new MatMulBatch();
                batch.Clear(1);
                for (int i = 0; i < specs.Length; i++)
                    batch.Add(weights[i], (float*)System.Runtime.InteropServices.Marshal.UnsafeAddrOfPinnedArrayElement(inputs[i], 0),
                        (float*)System.Runtime.InteropServices.Marshal.UnsafeAddrOfPinnedArrayElement(outputs[i], 0), specs[i].Tokens);
                MatMul.Multiply(batch, path);
                for (int i = 0; i < specs.Length; i++)
                {
                    var (t, rows, cols, n) = specs[i];
                    var expect = TestData.ReferenceMatMul(weights[i], inputs[i], n);
                    KernelCheck.AssertProducts(weights[i], Dequantize.Matrix(weights[i]), inputs[i], outputs[i], expect, n, path,
                        $"product {i} ({t}, {n} tokens) {KernelInfo.Name(path)}");
                }
            }
        }
        finally { foreach (var w in weights) w.Dispose(); }
    }

    [Fact]
    public void Rejects_short_buffers()
    {
        using var w = TestData.Matrix(DType.F32, new float[8 * 32], 8, 32);
        Assert.Throws<ArgumentException>(() => MatMul.Multiply(w, new float[31], new float[8], 1));
        Assert.Throws<ArgumentException>(() => MatMul.Multiply(w, new float[32], new float[7], 1));
    }
}
