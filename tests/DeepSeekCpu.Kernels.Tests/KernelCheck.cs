using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// The two checks most kernel tests make, once: every body this machine has (<see cref="KernelInfo.Available"/>) against
/// an independent result, row by row, with the error budget as an argument (ggml test-quantize-fns' shape).
/// </summary>
internal static unsafe class KernelCheck
{
    /// <summary>The allowed |got − expect| of row <c>r</c> whose reference value is <c>expect</c>.</summary>
    public delegate double Tolerance(int r, float expect);

    /// <summary>
    /// Every GEMV dot body (<see cref="Gemv.QuantDot"/> per path) on every row of <paramref name="w"/> against the scalar
    /// specification (<see cref="Gemv.QuantDotReference"/>) on the same activations, quantized once as the format
    /// expects (<see cref="ActQ8.QuantizeFor"/>).
    /// </summary>
    public static void EveryDotMatchesReference(WeightMatrix w, float[] x, Tolerance tolerance)
    {
        var t = w.Type;
        var (mem, a) = Activations(t, x);
        var reference = Gemv.QuantDotReference(t);
        Assert.True(reference != null, $"{t}: no reference dot");
        foreach (var path in KernelInfo.Available)
        {
            var dot = Gemv.QuantDot(t, path);
            Assert.True(dot != null, $"{t}: no dot on {KernelInfo.Name(path)}");
            for (int r = 0; r < w.Rows; r++)
            {
                float expect = reference(w.Row(r), &a), got = dot(w.Row(r), &a);
                double tol = tolerance(r, expect);
                Assert.True(Math.Abs(expect - got) <= tol,
                    $"{t} {KernelInfo.Name(path)} cols {w.Cols} row {r}: {got} vs reference {expect} (tolerance {tol:G3})");
            }
        }
        GC.KeepAlive(mem);
    }

    /// <summary><paramref name="x"/> quantized as format <paramref name="t"/>'s dot expects, in pinned memory that
    /// <c>Mem</c> keeps alive (the header points into it).</summary>
    public static (byte[] Mem, ActQ8 Acts) Activations(DType t, float[] x)
    {
        var mem = GC.AllocateArray<byte>((int)ActQ8.BytesFor(x.Length) + 64, pinned: true);
        byte* m = (byte*)System.Runtime.InteropServices.Marshal.UnsafeAddrOfPinnedArrayElement(mem, 0);
        var a = ActQ8.At((byte*)(((nint)m + 63) & ~63), x.Length);
        fixed (float* px = x) ActQ8.QuantizeFor(t, px, &a);
        return (mem, a);
    }

    /// <summary>
    /// <see cref="MatMul.Multiply(WeightMatrix, ReadOnlySpan{float}, Span{float}, int, KernelPath, int)"/> on every
    /// path for each token count in <paramref name="tokens"/> (inputs Gaussian with seed <paramref name="seed"/>(n)),
    /// against float64 products of the dequantized weights within <see cref="AssertProducts"/>' budget; and nothing
    /// written past n·rows.
    /// </summary>
    public static void EveryPathMultipliesLikeTheFloatReference(WeightMatrix w, int[] tokens, Func<int, int> seed)
    {
        var deq = Dequantize.Matrix(w);
        foreach (int n in tokens)
        {
            var x = TestData.Gaussian(n * w.Cols, seed(n));
            var expect = TestData.ReferenceMatMul(w, x, n);
            foreach (var path in KernelInfo.Available)
            {
                var y = new float[n * w.Rows + 5];
                y[^1] = 12345f;
                MatMul.Multiply(w, x, y, n, path);
                Assert.Equal(12345f, y[^1]);
                AssertProducts(w, deq, x, y, expect, n, path, $"{w.Type} {KernelInfo.Name(path)} n={n}");
            }
        }
    }

    /// <summary>
    /// y[n, rows] against the float64 reference <paramref name="expect"/>. Budget per output, from the scale of its
    /// terms (<see cref="TestData.TermNorm"/>): float paths, rounding of float32 sums; integer paths (activations
    /// quantized to 8 bits, as <see cref="MatMul.Plan"/> decides), the 8-bit activation error (see DotTests).
    /// </summary>
    public static void AssertProducts(WeightMatrix w, float[] deq, float[] x, ReadOnlySpan<float> y, double[] expect, int n, KernelPath path, string what)
    {
        int rows = w.Rows, cols = w.Cols;
        bool quantizedActs = MatMul.Plan(w, n, path).QuantizesActivations(w);
        for (int tk = 0; tk < n; tk++)
        for (int r = 0; r < rows; r++)
        {
            double norm = TestData.TermNorm(w, deq, x, tk, r);
            double budget = quantizedActs ? 0.15 * norm + 1e-5 : 2e-5 * norm * Math.Sqrt(cols) + 1e-6;
            double got = y[tk * rows + r], exp = expect[tk * rows + r];
            Assert.True(Math.Abs(got - exp) <= budget, $"{what} token {tk} row {r}: {got} vs {exp} (budget {budget:G3})");
        }
    }
}
